import { type DependencyContainer, definePluginSlot, NotRegisteredError, registrations } from '../plugins/registry.js';
import type { Backend } from './backend.js';

/**
 * A backend family a plugin provides (`GradfeatPlugin.backends`): gradfeat picks the available one with
 * the highest priority, as ONNX Runtime JS does with its backends, or the one named.
 */
export interface BackendPlugin {
  /** Family name users select with `--backend`, e.g. 'tfjs' or 'onnx'. */
  readonly name: string;
  /** Higher first when the user names no backend. */
  readonly priority: number;
  /** Initialises the runtime; rejects with a reason when it cannot run here. */
  create(): Promise<Backend>;
}

/** The `backends` of plugins. */
export const BACKENDS = definePluginSlot<BackendPlugin>('backends', 'backend', { create: 'function', priority: 'number' });

/** The registered backends, highest priority first. */
export function registeredBackends(container?: DependencyContainer): BackendPlugin[] {
  return registrations(BACKENDS, container)
    .map((r) => r.entry)
    .sort((a, b) => b.priority - a.priority);
}

/**
 * The first registered backend (in priority order, or only `preferred`) whose runtime initialises.
 * Fails with every candidate's reason, so a user sees why e.g. onnx was skipped.
 */
export async function resolveBackend(preferred?: string, container?: DependencyContainer): Promise<Backend> {
  const plugins = registeredBackends(container);
  const candidates = preferred ? plugins.filter((p) => p.name === preferred) : plugins;
  if (candidates.length === 0) {
    const names = plugins.map((p) => p.name);
    throw preferred
      ? new NotRegisteredError('backend', preferred, names)
      : new NotRegisteredError(
          'backend',
          '',
          names,
          'no gradfeat backend is registered: install and import @gradfeat/backend-onnx or @gradfeat/backend-tfjs, or register a plugin',
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
