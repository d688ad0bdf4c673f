import 'reflect-metadata';
import { type DependencyContainer, type InjectionToken, container as rootContainer } from 'tsyringe';
import type { Graph } from '../ir/graph.js';
import { defaultFiles, type FileSource } from './file-source.js';

/**
 * A model file format plugin (ONNX, TF.js layers, …): backend packages register the importers they
 * ship, and `loadNetwork` picks the one that recognises a path.
 */
export interface ModelFormat {
  readonly name: string;
  /** What paths look like, for error messages, e.g. "a .onnx file". */
  readonly describes: string;
  /** Whether this format reads `path`, e.g. by its extension or because it is a folder holding the format's files. */
  canLoad(path: string, files: FileSource): boolean | Promise<boolean>;
  /** Imports the model at `path` as gradfeat's network IR, its files read through `files`. */
  load(path: string, files: FileSource): Promise<Graph>;
}

/** The tsyringe token model formats are registered under. */
export const MODEL_FORMAT: InjectionToken<ModelFormat> = Symbol.for('gradfeat.ModelFormat');

/** Registers a model format (once per name) in the container, the root one by default. */
export function registerModelFormat(format: ModelFormat, container: DependencyContainer = rootContainer): void {
  if (registeredModelFormats(container).some((f) => f.name === format.name)) return;
  container.register(MODEL_FORMAT, { useValue: format });
}

/** The registered model formats. */
export function registeredModelFormats(container: DependencyContainer = rootContainer): ModelFormat[] {
  return container.isRegistered(MODEL_FORMAT, true) ? [...container.resolveAll(MODEL_FORMAT)] : [];
}

/**
 * Imports the model at `path` with the first registered format that recognises it, its files read
 * through `files` (default: the file system in Node, fetch in a browser; or droppedFiles, …); the
 * error lists the formats when none does.
 */
export async function loadNetwork(path: string, files?: FileSource, container: DependencyContainer = rootContainer): Promise<Graph> {
  const source = files ?? defaultFiles(container);
  const formats = registeredModelFormats(container);
  for (const format of formats) if (await format.canLoad(path, source)) return format.load(path, source);
  const known = formats.map((f) => `${f.name} (${f.describes})`).join('; ') || 'none registered';
  throw new Error(`${path}: not a model gradfeat can read; formats: ${known}`);
}
