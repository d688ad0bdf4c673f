import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sharedPath } from '../../../test-support/shared.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Where and how the CLI runs; `built` runs packages/cli/dist/bin.js as an installed `gradfeat` does. */
export interface CliOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  readonly nodeArgs?: readonly string[];
  readonly built?: boolean;
}

const BUILT_BIN = join(repo, 'packages/cli/dist/bin.js');

/** Runs the gradfeat CLI in a child process: from source (no build needed), or the built one. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  if (options.built && !existsSync(BUILT_BIN)) throw new Error(`${BUILT_BIN} is missing: build first (pnpm build; pnpm test does)`);
  return new Promise((resolvePromise, reject) => {
    const node = [...(options.built ? [] : ['--conditions=source', '--import', 'tsx']), ...(options.nodeArgs ?? [])];
    const script = options.built ? BUILT_BIN : join(repo, 'packages/cli/src/bin.ts');
    const child = spawn(process.execPath, [...node, script, ...args], {
      cwd: options.cwd ?? repo,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
  });
}

/** A run config (YAML) for the shared ResNet-20 cut before its last block, on CIFAR-format files in `dataset`. */
export function resnet20RunConfig(dataset: string, settings: readonly string[]): string {
  return [
    `model: ${sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx')}`,
    `dataset: cifar10:${dataset}`,
    'cut: layer3.1',
    'preprocessing: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], size: [32, 32] }',
    ...settings,
  ].join('\n');
}

/** Runs the CLI and kills it (SIGKILL: no chance to clean up) as soon as `file` exists, e.g. its first checkpoint. */
export function runCliKilledAt(
  args: readonly string[],
  file: string,
  options: { env?: Record<string, string | undefined> } = {},
): Promise<void> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repo, 'packages/cli/src/bin.ts'), ...args], {
      cwd: repo,
      env: { ...process.env, ...options.env },
      stdio: 'ignore',
    });
    const watch = setInterval(() => {
      if (existsSync(file)) child.kill('SIGKILL');
    }, 5);
    child.on('close', () => {
      clearInterval(watch);
      done();
    });
  });
}
