export { importOnnx, type OnnxImportOptions } from './import-onnx.js';
export { CLASS_NAMES_KEY, PREPROCESSING_KEY } from './metadata.js';
