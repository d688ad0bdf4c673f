import { onnxBackendPlugin, onnxModelFormat } from '@gradfeat/backend-onnx';
import { kerasModelFormat, tfjsBackendPlugin } from '@gradfeat/backend-tfjs';
import {
  type Backend,
  referenceBackendPlugin,
  registerBackend,
  registeredBackends,
  registerModelFormat,
  resolveBackend,
} from '@gradfeat/core';
import { Option } from 'commander';

// The CLI is where the plugins meet: every backend and model format the installed packages provide.
for (const plugin of [onnxBackendPlugin, tfjsBackendPlugin, referenceBackendPlugin]) registerBackend(plugin);
for (const format of [onnxModelFormat, kerasModelFormat]) registerModelFormat(format);

export function backendOption(): Option {
  return new Option('--backend <name>', 'execution backend; default: the fastest that starts').choices(
    registeredBackends().map((p) => p.name),
  );
}

export function openBackend(name: string | undefined): Promise<Backend> {
  return resolveBackend(name);
}
