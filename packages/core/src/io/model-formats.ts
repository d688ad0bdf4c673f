import type { Graph } from '../ir/graph.js';
import { type DependencyContainer, definePluginSlot, NotRegisteredError, registrations } from '../plugins/registry.js';
import { defaultFiles, type FileSource } from './file-source.js';

/**
 * A model file format a plugin provides (`GradfeatPlugin.modelFormats`: ONNX, TF.js layers, …):
 * `loadNetwork` picks the one that recognises a path.
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

/** The `modelFormats` of plugins. */
export const MODEL_FORMATS = definePluginSlot<ModelFormat>('modelFormats', 'model format', {
  describes: 'string',
  canLoad: 'function',
  load: 'function',
});

/** The registered model formats, in registration order. */
export function registeredModelFormats(container?: DependencyContainer): ModelFormat[] {
  return registrations(MODEL_FORMATS, container).map((r) => r.entry);
}

/** Where `loadNetwork` reads a model's files and looks up the formats. */
export interface LoadNetworkOptions {
  /** Default: the registered default (the file system in Node, fetch in a browser); or droppedFiles, fetchFiles(base), … */
  readonly files?: FileSource;
  /** Default: tsyringe's root container. */
  readonly container?: DependencyContainer;
}

/**
 * Imports the model at `path` with the first registered format that recognises it, its files read
 * through `options.files`; the error lists the formats when none does.
 */
export async function loadNetwork(path: string, options: LoadNetworkOptions = {}): Promise<Graph> {
  const { container } = options;
  const files = options.files ?? defaultFiles(container);
  const formats = registeredModelFormats(container);
  for (const format of formats) if (await format.canLoad(path, files)) return format.load(path, files);
  const known = formats.map((f) => `${f.name} (${f.describes})`).join('; ') || 'none registered';
  throw new NotRegisteredError(
    'model format',
    path,
    formats.map((f) => f.name),
    `${path}: not a model gradfeat can read; formats: ${known}`,
  );
}
