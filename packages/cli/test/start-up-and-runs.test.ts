import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithShared, hasShared, sharedPath } from '../../../test-support/shared.js';
import { runCli } from './run-cli.js';

const here = dirname(fileURLToPath(import.meta.url));
const RESNET20 = sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx');
const NORMALISE = ['--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225'];
const RECORD = 1 + 3 * 32 * 32;
let work = '';

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'gradfeat-start-up-'));
  if (hasShared) {
    const records = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
    // One CIFAR .bin file, as a user may download one batch; and a directory with both splits (5 × 20 / 50 records).
    writeFileSync(join(work, 'one_batch.bin'), records.subarray(0, 100 * RECORD));
    mkdirSync(join(work, 'cifar'));
    for (const b of [1, 2, 3, 4, 5])
      writeFileSync(join(work, 'cifar', `data_batch_${b}.bin`), records.subarray((b - 1) * 20 * RECORD, b * 20 * RECORD));
    writeFileSync(join(work, 'cifar', 'test_batch.bin'), records.subarray(100 * RECORD, 150 * RECORD));
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The modules a CLI command resolved, from the import log of record-imports.mjs. */
async function modulesLoadedBy(args: string[]): Promise<string[]> {
  const log = join(work, `imports-${args[0].replace(/\W/g, '')}.log`);
  const run = await runCli(args, { nodeArgs: ['--import', join(here, 'record-imports.mjs')], env: { GRADFEAT_IMPORT_LOG: log } });
  expect(run.code, run.stderr).toBe(0);
  return readFileSync(log, 'utf8').split('\n');
}

/** Any module of a backend package but its plugin descriptor (and the Keras format it lists), ONNX Runtime, TF.js or the ONNX protobuf reader. */
const BACKEND_MODULES =
  /packages\/backend-(onnx|tfjs)\/(?!src\/(plugin|keras\/model-format)\.ts$)|@tensorflow|onnxruntime-node|onnx-proto|protobufjs/;

describe('gradfeat start-up', () => {
  it("--version and --help load only the backend plugins' descriptors, no ONNX or TensorFlow.js module (they load on first use)", async () => {
    for (const args of [['--version'], ['--help'], ['predict', '--help']]) {
      const loaded = await modulesLoadedBy(args);
      expect(loaded.some((url) => url.includes('packages/cli/src/cli.ts'))).toBe(true);
      // The descriptors are what lets --help list the registered backends and formats.
      expect(loaded.some((url) => url.endsWith('packages/backend-onnx/src/plugin.ts'))).toBe(true);
      expect(loaded.filter((url) => BACKEND_MODULES.test(url))).toEqual([]);
    }
  });

  it('--version prints the version in package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8'));
    const run = await runCli(['--version']);
    expect(run.stdout.trim()).toBe(version);
  });
});

describeWithShared('gradfeat compare refuses before writing anything', () => {
  it('names --image-size when the model states no input size, writes nothing, and the corrected command then runs', async () => {
    const out = join(work, 'no-size');
    const args = ['compare', '--model', RESNET20, '--dataset', `cifar10:${join(work, 'cifar')}`, '--cut', 'layer3.1'];
    const common = ['--methods', 'activation', '--epochs', '1', '--workers', '0', '--out', out];
    const failed = await runCli([...args, ...NORMALISE, ...common]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('pass --image-size N');
    expect(existsSync(out)).toBe(false);
    const retried = await runCli([...args, ...NORMALISE, '--image-size', '32', ...common]);
    expect(retried.code, retried.stderr).toBe(0);
    expect(existsSync(join(out, 'metrics.json'))).toBe(true);
  });

  it('names both --mean and --std when only one is given', async () => {
    const out = join(work, 'only-mean');
    const run = await runCli([
      'compare',
      ...['--model', RESNET20, '--dataset', `cifar10:${join(work, 'cifar')}`, '--cut', 'layer3.1', '--out', out],
      ...['--mean', '0.5,0.5,0.5', '--image-size', '32'],
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('both --mean r,g,b and --std r,g,b');
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a test split that reads the training images (one CIFAR .bin), and with --test-on-training-split says so in the report', async () => {
    const bin = join(work, 'one_batch.bin');
    const base = ['compare', '--model', RESNET20, '--dataset', `cifar10:${bin}`, '--cut', 'layer3.1', ...NORMALISE, '--image-size', '32'];
    const out = join(work, 'same-data');
    const quick = ['--out', out, '--methods', 'activation', '--epochs', '1', '--workers', '0'];
    const refused = await runCli([...base, ...quick]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`reads the same images as the training split 'train' (${bin})`);
    expect(refused.stderr).toContain('--test-on-training-split');
    expect(existsSync(out)).toBe(false);

    const accepted = await runCli([...base, ...quick, '--test-on-training-split', '--json']);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(JSON.parse(accepted.stdout).warning).toMatch(/training accuracies/);
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toMatch(/\| test data \| the training split \(.*training accuracies/);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).testOnTrainingSplit).toBe(true);
  });
});
