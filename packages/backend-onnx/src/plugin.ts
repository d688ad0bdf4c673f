import type { BackendPlugin, GradfeatPlugin, ModelFormat } from '@gradfeat/core/engine';

// This module is what `gradfeat` loads to learn what the package provides, so it imports neither
// ONNX Runtime nor the ONNX protobuf reader: they load when a backend starts or a model is read.

/** The 'onnx' backend family (priority 20, above TF.js); see `createOnnxBackendFromEnvironment` for its settings. */
export const onnxBackendPlugin: BackendPlugin = {
  name: 'onnx',
  priority: 20,
  create: async () => (await import('./runtime/backend.js')).createOnnxBackendFromEnvironment(),
};

/** Lets `loadNetwork` (and so `gradfeat info/eval/compare --model x.onnx`) read ONNX files, from any FileSource. */
export const onnxModelFormat: ModelFormat = {
  name: 'onnx',
  describes: 'a .onnx file',
  canLoad: (path) => path.toLowerCase().endsWith('.onnx'),
  load: async (path, files) => (await import('./import/import-onnx.js')).importOnnx(await files.read(path), { source: path }),
};

/** The package's plugin; importing `@gradfeat/backend-onnx` registers it, and it is the default export of `@gradfeat/backend-onnx/plugin`. */
export const onnxPlugin: GradfeatPlugin = {
  name: '@gradfeat/backend-onnx',
  backends: [onnxBackendPlugin],
  modelFormats: [onnxModelFormat],
};

export default onnxPlugin;
