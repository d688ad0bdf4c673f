export { importOnnx, type OnnxImportOptions } from './import-onnx.js';
export { CLASS_NAMES_KEY, modelMetadata, PREPROCESSING_KEY } from './metadata.js';
export { type OnnxModelInfo, readOnnxModelInfo } from './model-info.js';
