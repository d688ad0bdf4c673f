import { registerTfjsBackend } from './backend.js';
import { registerKerasModelFormat } from './model-format.js';

export { createTfjsBackend, registerTfjsBackend, type TfjsBackend, type TfjsBackendOptions, tfjsBackendPlugin } from './backend.js';
export { importKerasModel, type KerasGraph, type KerasModelMetadata } from './keras/index.js';
export { kerasModelFormat, registerKerasModelFormat } from './model-format.js';
export { RUNTIME_ENV_VAR, type SkippedRuntime, TFJS_RUNTIMES, type TfjsRuntime } from './runtime.js';

// Importing the package makes TensorFlow.js a backend `resolveBackend()` can pick and TF.js layers
// models a format `loadNetwork()` reads (registration is idempotent).
registerTfjsBackend();
registerKerasModelFormat();
