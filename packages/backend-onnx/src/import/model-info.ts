import { readFile } from 'node:fs/promises';
import { decodeModel } from './proto.js';

/** What an .onnx file declares about itself, read without importing its graph. */
export interface OnnxModelInfo {
  readonly inputs: readonly { readonly name: string; readonly dims: readonly (number | string)[] }[];
  readonly outputs: readonly string[];
  /** The model's metadata_props. */
  readonly metadata: ReadonlyMap<string, string>;
}

/** Reads an .onnx file's inputs, outputs and metadata_props, e.g. to describe a `gradfeat export` file. */
export async function readOnnxModelInfo(path: string): Promise<OnnxModelInfo> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new Error(`${path}: cannot read the model (${(error as Error).message})`, { cause: error });
  }
  try {
    const model = decodeModel(bytes);
    return { inputs: model.inputs.map(({ name, dims }) => ({ name, dims })), outputs: model.outputs, metadata: model.metadataProps };
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`, { cause: error });
  }
}
