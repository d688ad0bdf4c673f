import 'reflect-metadata';
import { type DependencyContainer, type InjectionToken, container as rootContainer } from 'tsyringe';
import type { Graph } from '../ir/graph.js';

/**
 * A model file format plugin (ONNX, TF.js layers, …): backend packages register the importers they
 * ship, and `loadNetwork` picks the one that recognises a path.
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

/** Imports a model file with the first registered format that recognises its path; the error lists the formats when none does. */
export async function loadNetwork(path: string, container: DependencyContainer = rootContainer): Promise<Graph> {
  const formats = registeredModelFormats(container);
  const format = formats.find((f) => f.canLoad(path));
  if (!format) {
    const known = formats.map((f) => `${f.name} (${f.describes})`).join('; ') || 'none registered';
    throw new Error(`${path}: not a model gradfeat can read; formats: ${known}`);
  }
  return format.load(path);
}
