import { childPath, type FileSource, type GradfeatPlugin, type ModelFormat } from '@gradfeat/core/engine';

// Light, like ../plugin.ts (which lists this format too): the importer loads when a model is read.

/** model.json itself, or the folder that holds it. */
async function modelJsonPath(path: string, files: FileSource): Promise<string> {
  return (await files.isDirectory(path)) ? childPath(path, 'model.json') : path;
}

/** Lets `loadNetwork` read TF.js Keras layers models (model.json + weight shards), from any FileSource. */
export const kerasModelFormat: ModelFormat = {
  name: 'tfjs-layers',
  describes: 'a TF.js layers model.json or its folder',
  canLoad: async (path, files) => (await modelJsonPath(path, files)).toLowerCase().endsWith('.json'),
  load: async (path, files) => (await import('./import.js')).importKerasModel(await modelJsonPath(path, files), files),
};

/**
 * The Keras model format alone, without the TF.js backend: what a page registers (`registerPlugin(kerasPlugin)`)
 * to read model.json files with `loadNetwork` while another backend (onnx-web) runs them.
 */
export const kerasPlugin: GradfeatPlugin = { name: '@gradfeat/backend-tfjs/keras', modelFormats: [kerasModelFormat] };
