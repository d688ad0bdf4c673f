import 'reflect-metadata';
import { type DependencyContainer, type InjectionToken, container as rootContainer } from 'tsyringe';
import type { Backend } from './backend.js';

/**
 * A backend plugin: a package registers one (or more) of these; gradfeat picks the available one
 * with the highest priority, as ONNX Runtime JS does with its backends.
 */
export interface BackendPlugin {
  /** Family name users select with `--backend`, e.g. 'tfjs' or 'onnx'. */
  readonly name: string;
  /** Higher first when the user names no backend. */
  readonly priority: number;
  /** Initialises the runtime; rejects with a reason when it cannot run here. */
  create(): Promise<Backend>;
}

/** The tsyringe token backend plugins are registered under. */
export const BACKEND_PLUGIN: InjectionToken<BackendPlugin> = Symbol.for('gradfeat.BackendPlugin');

/** Registers a backend plugin (once per name) in the container, the root one by default. */
export function registerBackend(plugin: BackendPlugin, container: DependencyContainer = rootContainer): void {
  if (registeredBackends(container).some((p) => p.name === plugin.name)) return;
  container.register(BACKEND_PLUGIN, { useValue: plugin });
}

/** The registered plugins, highest priority first. */
export function registeredBackends(container: DependencyContainer = rootContainer): BackendPlugin[] {
  if (!container.isRegistered(BACKEND_PLUGIN, true)) return [];
  return [...container.resolveAll(BACKEND_PLUGIN)].sort((a, b) => b.priority - a.priority);
}

/**
 * The first registered backend (in priority order, or only `preferred`) whose runtime initialises.
 * Fails with every candidate's reason, so a user sees why e.g. onnx was skipped.
 */
export async function resolveBackend(preferred?: string, container: DependencyContainer = rootContainer): Promise<Backend> {
  const plugins = registeredBackends(container);
  const candidates = preferred ? plugins.filter((p) => p.name === preferred) : plugins;
  if (candidates.length === 0) {
    const known = plugins.map((p) => p.name).join(', ') || 'none';
    throw new Error(
      preferred
        ? `unknown backend '${preferred}' (registered: ${known}); install and import its package, e.g. @gradfeat/backend-${preferred}`
        : 'no gradfeat backend is registered: install and import @gradfeat/backend-onnx or @gradfeat/backend-tfjs',
    );
  }
  const reasons: string[] = [];
  for (const plugin of candidates) {
    try {
      return await plugin.create();
    } catch (error) {
      reasons.push(`${plugin.name}: ${(error as Error).message}`);
    }
  }
  throw new Error(`no backend could start:\n  ${reasons.join('\n  ')}`);
}
export type { DependencyContainer } from 'tsyringe';
