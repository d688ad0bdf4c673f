import { type Backend, type Graph, loadNetwork, registeredBackends, resolveBackend } from '@gradfeat/core';
import { Option } from 'commander';
import { loadPlugins } from './plugins.js';

/**
 * `--backend`, listing the registered backends as its choices. They are checked when the backend is
 * opened rather than when the flag is parsed, because a run config's plugins may add one.
 */
export function backendOption(): Option {
  const option = new Option('--backend <name>', 'execution backend; default: the fastest that starts');
  option.argChoices = registeredBackends().map((backend) => backend.name);
  return option;
}

/** The named backend, or the fastest that starts, from the registered plugins. */
export async function openBackend(name: string | undefined): Promise<Backend> {
  await loadPlugins();
  return resolveBackend(name);
}

/** A network from any model file a registered plugin can read. */
export async function loadModel(path: string): Promise<Graph> {
  await loadPlugins();
  return loadNetwork(path);
}
