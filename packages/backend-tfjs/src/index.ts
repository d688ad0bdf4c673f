import { registerTfjsBackend } from './backend.js';
import { registerKerasModelFormat } from './keras/index.js';

export { createTfjsBackend, registerTfjsBackend, type TfjsBackend, type TfjsBackendOptions, tfjsBackendPlugin } from './backend.js';
export {
  importKerasModel,
  type KerasGraph,
  type KerasModelMetadata,
  kerasModelFormat,
  registerKerasModelFormat,
} from './keras/index.js';
export { RUNTIME_ENV_VAR, type SkippedRuntime, TFJS_RUNTIMES, type TfjsRuntime } from './runtime.js';

// Importing the package makes TensorFlow.js a backend `resolveBackend()` can pick and TF.js layers
// models a format `loadNetwork()` reads (registration is idempotent).
registerTfjsBackend();
registerKerasModelFormat();
