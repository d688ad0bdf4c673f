import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Runs one program on the ONNX Runtime backend in a fresh process, as the CLI does; returns its pid. */
function runBackendOnce(env: NodeJS.ProcessEnv): number {
  const script = [
    "import { createOnnxBackend } from '@gradfeat/backend-onnx';",
    "import { forwardProgram, smallCnn, runProgramOnce, INPUT } from '@gradfeat/core';",
    'const backend = await createOnnxBackend();',
    'const network = smallCnn({ input: [1, 4, 4], channels: [2], strides: [1], classes: 2, seed: 1 });',
    "await runProgramOnce(backend, forwardProgram(network), { [INPUT]: { shape: [1, 1, 4, 4], data: new Float32Array(16) } }, 'probe');",
  ].join('\n');
  const child = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: join(repo, 'packages', 'cli'),
    env,
    encoding: 'utf8',
  });
  expect(child.status, child.stderr).toBe(0);
  return child.pid as number;
}

describe('ONNX Runtime leaves no files of its own behind', () => {
  it.skipIf(process.platform !== 'linux')('writes no mat-debug-<pid>.log to /tmp and no telemetry store under the cache folder', () => {
    const cache = mkdtempSync(join(tmpdir(), 'gradfeat-xdg-cache-'));
    const { ORT_DISABLE_TELEMETRY: _unset, ...env } = process.env;
    const pid = runBackendOnce({ ...env, XDG_CACHE_HOME: cache });
    const log = `/tmp/mat-debug-${pid}.log`;
    try {
      expect(existsSync(log)).toBe(false);
      expect(readdirSync(cache)).toEqual([]);
    } finally {
      rmSync(log, { force: true });
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
