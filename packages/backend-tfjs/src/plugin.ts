import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BackendPlugin, GradfeatPlugin, ModelFormat } from '@gradfeat/core';

// This module is what `gradfeat` loads to learn what the package provides, so it does not import
// TensorFlow.js: it loads when the backend starts or a model is read.

/** The 'tfjs' family for `--backend tfjs`; ONNX Runtime (priority 20) is preferred when both are installed. */
export const tfjsBackendPlugin: BackendPlugin = {
  name: 'tfjs',
  priority: 10,
  create: async () => (await import('./backend.js')).createTfjsBackend(),
};

/** model.json itself, or the directory that holds it. */
function modelJsonPath(path: string): string {
  return existsSync(path) && statSync(path).isDirectory() ? join(path, 'model.json') : path;
}

/** Lets `loadNetwork` read TF.js Keras layers models (model.json + weight shards). */
export const kerasModelFormat: ModelFormat = {
  name: 'tfjs-layers',
  describes: 'a TF.js layers model.json or its directory',
  canLoad: (path) => basename(modelJsonPath(path)).toLowerCase().endsWith('.json') && existsSync(modelJsonPath(path)),
  load: async (path) => (await import('./keras/import.js')).importKerasModel(modelJsonPath(path)),
};

/** The package's plugin; importing `@gradfeat/backend-tfjs` registers it, and it is the default export of `@gradfeat/backend-tfjs/plugin`. */
export const tfjsPlugin: GradfeatPlugin = {
  name: '@gradfeat/backend-tfjs',
  backends: [tfjsBackendPlugin],
  modelFormats: [kerasModelFormat],
};

export default tfjsPlugin;
