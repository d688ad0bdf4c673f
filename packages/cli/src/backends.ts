import { onnxBackendPlugin } from '@gradfeat/backend-onnx';
import { tfjsBackendPlugin } from '@gradfeat/backend-tfjs';
import { type Backend, referenceBackendPlugin, registerBackend, registeredBackends, resolveBackend } from '@gradfeat/core';
import { Option } from 'commander';

for (const plugin of [onnxBackendPlugin, tfjsBackendPlugin, referenceBackendPlugin]) registerBackend(plugin);

export function backendOption(): Option {
  return new Option('--backend <name>', 'execution backend; default: the fastest that starts').choices(
    registeredBackends().map((p) => p.name),
  );
}

export function openBackend(name: string | undefined): Promise<Backend> {
  return resolveBackend(name);
}
