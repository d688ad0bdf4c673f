import { registerPlugin } from '@gradfeat/core/engine';
import { tfjsPlugin } from './plugin.js';

export { createTfjsBackend, type TfjsBackend, type TfjsBackendOptions } from './backend.js';
export { importKerasModel, type KerasGraph, type KerasModelMetadata, kerasModelFormat, kerasPlugin } from './keras/index.js';
export { tfjsBackendPlugin, tfjsPlugin } from './plugin.js';
export { RUNTIME_ENV_VAR, type SkippedRuntime, TFJS_RUNTIMES, type TfjsRuntime } from './runtime.js';

// Importing the package makes TensorFlow.js a backend `resolveBackend()` can pick and TF.js layers
// models a format `loadNetwork()` reads (registering a plugin twice changes nothing).
registerPlugin(tfjsPlugin);
