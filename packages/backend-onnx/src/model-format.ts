import { type DependencyContainer, type ModelFormat, registerModelFormat } from '@gradfeat/core';
import { importOnnx } from './import/index.js';

/** Lets `loadNetwork` (and so `gradfeat info/eval/compare --model x.onnx`) read ONNX files, from any FileSource. */
export const onnxModelFormat: ModelFormat = {
  name: 'onnx',
  describes: 'a .onnx file',
  canLoad: (path) => path.toLowerCase().endsWith('.onnx'),
  load: async (path, files) => importOnnx(await files.read(path), { source: path }),
};

/** Registers `onnxModelFormat` (in the root container unless one is given); importing the package already does. */
export function registerOnnxModelFormat(container?: DependencyContainer): void {
  registerModelFormat(onnxModelFormat, container);
}
