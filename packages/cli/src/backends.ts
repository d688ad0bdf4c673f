import {
  type Backend,
  type Graph,
  loadNetwork,
  referenceBackendPlugin,
  registerBackend,
  registerModelFormat,
  resolveBackend,
} from '@gradfeat/core';
import { Option } from 'commander';

/** The backends `--backend` accepts: what the installed backend packages and core register. */
export const BACKEND_NAMES = ['onnx', 'tfjs', 'js'] as const;
/** A name `--backend` accepts. */
export type BackendName = (typeof BACKEND_NAMES)[number];

let plugins: Promise<void> | undefined;

/**
 * The CLI is where the plugins meet: every backend and model format the installed packages provide.
 * They load on first use, so `--version`, `--help` and commands that need no model start without
 * ONNX Runtime or TensorFlow.js.
 */
function loadPlugins(): Promise<void> {
  plugins ??= Promise.all([import('@gradfeat/backend-onnx'), import('@gradfeat/backend-tfjs')]).then(([onnx, tfjs]) => {
    for (const plugin of [onnx.onnxBackendPlugin, tfjs.tfjsBackendPlugin, referenceBackendPlugin]) registerBackend(plugin);
    for (const format of [onnx.onnxModelFormat, tfjs.kerasModelFormat]) registerModelFormat(format);
  });
  return plugins;
}

export function backendOption(): Option {
  return new Option('--backend <name>', 'execution backend; default: the fastest that starts').choices(BACKEND_NAMES);
}

export async function openBackend(name: string | undefined): Promise<Backend> {
  await loadPlugins();
  return resolveBackend(name);
}

/** A network from any model file the installed packages can read. */
export async function loadModel(path: string): Promise<Graph> {
  await loadPlugins();
  return loadNetwork(path);
}
