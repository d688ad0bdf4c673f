import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type DependencyContainer, type ModelFormat, registerModelFormat } from '@gradfeat/core';
import { importKerasModel } from './keras/index.js';

/** model.json itself, or the directory that holds it. */
function modelJsonPath(path: string): string {
  return existsSync(path) && statSync(path).isDirectory() ? join(path, 'model.json') : path;
}

/** Lets `loadNetwork` read TF.js Keras layers models (model.json + weight shards). */
export const kerasModelFormat: ModelFormat = {
  name: 'tfjs-layers',
  describes: 'a TF.js layers model.json or its directory',
  canLoad: (path) => basename(modelJsonPath(path)).toLowerCase().endsWith('.json') && existsSync(modelJsonPath(path)),
  load: (path) => importKerasModel(modelJsonPath(path)),
};

/** Registers `kerasModelFormat` (in the root container unless one is given); importing the package already does. */
export function registerKerasModelFormat(container?: DependencyContainer): void {
  registerModelFormat(kerasModelFormat, container);
}
