import type { Graph } from '../ir/graph.js';
import { type DependencyContainer, definePluginSlot, NotRegisteredError, registrations } from '../plugins/registry.js';

/**
 * A model file format a plugin provides (`GradfeatPlugin.modelFormats`: ONNX, TF.js layers, …):
 * `loadNetwork` picks the one that recognises a path.
 */
export interface ModelFormat {
  readonly name: string;
  /** What paths look like, for error messages, e.g. "a .onnx file". */
  readonly describes: string;
  /** Whether this format reads `path` (by its name or what is there). */
  canLoad(path: string): boolean;
  /** Imports the file as gradfeat's network IR. */
  load(path: string): Promise<Graph>;
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

/** Imports a model file with the first registered format that recognises its path; the error lists the formats when none does. */
export async function loadNetwork(path: string, container?: DependencyContainer): Promise<Graph> {
  const formats = registeredModelFormats(container);
  const format = formats.find((f) => f.canLoad(path));
  if (!format) {
    const known = formats.map((f) => `${f.name} (${f.describes})`).join('; ') || 'none registered';
    throw new NotRegisteredError(
      'model format',
      path,
      formats.map((f) => f.name),
      `${path}: not a model gradfeat can read; formats: ${known}`,
    );
  }
  return format.load(path);
}
