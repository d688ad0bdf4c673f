// The atomic write is core's application layer (io), Node only like this module: no engine name does it.
import { writeFileAtomic } from '@gradfeat/core';
import type { SignedProgram } from '@gradfeat/core/engine';
import { traceProgram } from './trace.js';

/** Names and metadata stored in a saved model. */
export interface SaveOnnxOptions {
  /** The graph's name; default 'gradfeat'. */
  readonly name?: string;
  readonly docString?: string;
  /** Stored as the model's metadata_props, e.g. the source network and the method that trained it. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** What `saveProgramAsOnnx` wrote. */
export interface SavedOnnxModel {
  readonly path: string;
  readonly inputs: readonly string[];
  /** Program output key → the output's name in the file. */
  readonly outputs: Readonly<Record<string, string>>;
  readonly bytes: number;
}

/**
 * Writes a program as a standalone .onnx file: inputs keep the program's input names, outputs its
 * output keys, and every constant it used (e.g. trained weights) is stored in the file. The file is
 * written beside its destination and renamed into place, so a reader never sees half a model.
 */
export async function saveProgramAsOnnx(program: SignedProgram, path: string, options: SaveOnnxOptions = {}): Promise<SavedOnnxModel> {
  const traced = traceProgram(program, { ...options, name: options.name ?? 'gradfeat' });
  try {
    await writeFileAtomic(path, traced.model);
  } catch (error) {
    throw new Error(`could not write the ONNX model to '${path}': ${(error as Error).message}`, { cause: error });
  }
  return { path, inputs: Object.keys(program.inputs), outputs: traced.outputNames, bytes: traced.model.byteLength };
}
