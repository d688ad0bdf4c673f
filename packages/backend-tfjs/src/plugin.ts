import type { BackendPlugin, GradfeatPlugin } from '@gradfeat/core/engine';
import { kerasModelFormat } from './keras/model-format.js';

// This module is what `gradfeat` loads to learn what the package provides, so it does not import
// TensorFlow.js: it loads when the backend starts or a model is read.

/** The 'tfjs' family for `--backend tfjs`; ONNX Runtime (priority 20) is preferred when both are installed. */
export const tfjsBackendPlugin: BackendPlugin = {
  name: 'tfjs',
  priority: 10,
  create: async () => (await import('./backend.js')).createTfjsBackend(),
};

/** The package's plugin; importing `@gradfeat/backend-tfjs` registers it, and it is the default export of `@gradfeat/backend-tfjs/plugin`. */
export const tfjsPlugin: GradfeatPlugin = {
  name: '@gradfeat/backend-tfjs',
  backends: [tfjsBackendPlugin],
  modelFormats: [kerasModelFormat],
};

export default tfjsPlugin;
