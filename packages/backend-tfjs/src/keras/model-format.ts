import { childPath, type DependencyContainer, type FileSource, type ModelFormat, registerModelFormat } from '@gradfeat/core';
import { importKerasModel } from './import.js';

/** model.json itself, or the folder that holds it. */
async function modelJsonPath(path: string, files: FileSource): Promise<string> {
  return (await files.isDirectory(path)) ? childPath(path, 'model.json') : path;
}

/** Lets `loadNetwork` read TF.js Keras layers models (model.json + weight shards), from any FileSource. */
export const kerasModelFormat: ModelFormat = {
  name: 'tfjs-layers',
  describes: 'a TF.js layers model.json or its folder',
  canLoad: async (path, files) => (await modelJsonPath(path, files)).toLowerCase().endsWith('.json'),
  load: async (path, files) => importKerasModel(await modelJsonPath(path, files), files),
};

/** Registers `kerasModelFormat` (in the root container unless one is given); importing `@gradfeat/backend-tfjs` already does. */
export function registerKerasModelFormat(container?: DependencyContainer): void {
  registerModelFormat(kerasModelFormat, container);
}
