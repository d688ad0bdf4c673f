import { registerOnnxModelFormat } from './model-format.js';
import { registerOnnxBackend } from './runtime/index.js';

export * from './import/index.js';
export * from './model-format.js';
export * from './runtime/index.js';

// Importing the package makes ONNX Runtime a backend `resolveBackend()` can pick and .onnx a format
// `loadNetwork()` reads (registration is idempotent; ONNX Runtime itself loads on first use).
registerOnnxBackend();
registerOnnxModelFormat();
