import { registerPlugin } from '@gradfeat/core/engine';
import { onnxPlugin } from './plugin.js';

export * from './import/index.js';
export * from './plugin.js';
export * from './runtime/index.js';

// Importing the package makes ONNX Runtime a backend `resolveBackend()` can pick and .onnx a format
// `loadNetwork()` reads (registering a plugin twice changes nothing; ONNX Runtime loads on first use).
registerPlugin(onnxPlugin);
