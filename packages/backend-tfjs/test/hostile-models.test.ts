import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';

const targets = fileURLToPath(new URL('./isolated-targets.ts', import.meta.url));
/** dense/kernel [4, 3] and dense/bias [3] in float32. */
const WEIGHT_BYTES = 15 * 4;

/** A two-layer model.json whose single weight group reads `paths`. */
function tinyModel(paths: readonly string[]): string {
  return JSON.stringify({
    modelTopology: {
      class_name: 'Sequential',
      config: {
        name: 'tiny',
        layers: [
          { class_name: 'Flatten', config: { name: 'flat', batch_input_shape: [null, 2, 2, 1] } },
          { class_name: 'Dense', config: { name: 'dense', units: 3, activation: 'linear', use_bias: true } },
        ],
      },
    },
    weightsManifest: [
      {
        paths,
        weights: [
          { name: 'dense/kernel', shape: [4, 3], dtype: 'float32' },
          { name: 'dense/bias', shape: [3], dtype: 'float32' },
        ],
      },
    ],
  });
}

describe('TF.js weight paths stay inside the model folder (imported in a child process)', () => {
  let root: string;
  let models: string;
  const isolated = new Isolated(targets, 20_000);

  /** model.json in its own folder under `models`, reading `paths`. */
  async function model(name: string, paths: readonly string[]): Promise<string> {
    const folder = join(models, name);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'model.json'), tinyModel(paths));
    return join(folder, 'model.json');
  }

  async function expectRefused(file: string, problem: RegExp | string) {
    const outcome = await isolated.call('importModel', file);
    expect(outcome.kind, describeOutcome(outcome)).toBe('threw');
    if (outcome.kind !== 'threw') return;
    expect(outcome.error.message).toContain(file);
    expect(outcome.error.message).toMatch(problem);
    expect(outcome.peakGrowthBytes, describeOutcome(outcome)).toBeLessThan(64 * 2 ** 20);
    return outcome.error.message;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gradfeat-hostile-tfjs-'));
    models = join(root, 'models');
    await writeFile(join(root, 'outside.bin'), Buffer.alloc(WEIGHT_BYTES, 1));
  });
  afterAll(async () => {
    await isolated.close();
    await rm(root, { recursive: true, force: true });
  });

  it('a well-formed model imports', async () => {
    const file = await model('good', ['weights.bin']);
    await writeFile(join(models, 'good', 'weights.bin'), Buffer.alloc(WEIGHT_BYTES));
    const outcome = await isolated.call('importModel', file);
    expect(outcome, describeOutcome(outcome)).toMatchObject({ kind: 'returned', value: { nodes: 2, params: 2, cutPoints: 2 } });
  });

  it('refuses ../ and absolute paths to a file outside the folder, without telling its size', async () => {
    const escaping = await model('escaping', ['../../outside.bin']);
    const message = await expectRefused(escaping, /weight file '\.\.\/\.\.\/outside\.bin' leaves the model's folder/);
    expect(message).not.toMatch(/holds \d+ bytes/);
    await expectRefused(await model('absolute', [join(root, 'outside.bin')]), /leaves the model's folder/);
  });

  it('refuses a symbolic link inside the folder that points outside it', async () => {
    const file = await model('linked', ['weights.bin']);
    await symlink(join(root, 'outside.bin'), join(models, 'linked', 'weights.bin'));
    await expectRefused(file, /weight file 'weights\.bin' leaves the model's folder/);
  });

  it('refuses /dev/zero reached through ../ at once instead of reading it without end', async () => {
    const file = await model('device', [`${relative(join(models, 'device'), '/')}/dev/zero`]);
    await expectRefused(file, /leaves the model's folder/);
  });

  it('refuses a FIFO in the folder instead of waiting on it for ever', async () => {
    const file = await model('fifo', ['weights.bin']);
    execFileSync('mkfifo', [join(models, 'fifo', 'weights.bin')]);
    await expectRefused(file, /weight file '.*weights\.bin' is not a regular file/);
  });

  it('compares the size with the manifest before reading: a 1.5 GiB weight file is refused without reading it', async () => {
    const file = await model('huge', ['weights.bin']);
    await writeFile(join(models, 'huge', 'weights.bin'), '');
    await truncate(join(models, 'huge', 'weights.bin'), 1.5 * 2 ** 30);
    await expectRefused(
      file,
      `holds ${1.5 * 2 ** 30} bytes, but the weights dense/kernel [4, 3], dense/bias [3] need ${WEIGHT_BYTES} bytes`,
    );
  });
});

describe('TF.js import of a very deep model (in a child process)', () => {
  const isolated = new Isolated(targets, 30_000);
  afterAll(() => isolated.close());

  it('imports and describes a 12,000-layer functional model without overflowing the stack, in linear time', async () => {
    const root = await mkdtemp(join(tmpdir(), 'gradfeat-deep-tfjs-'));
    try {
      const depth = 12_000;
      const call = (name: string) => [[[name, 0, 0, {}]]];
      const layers = [
        { class_name: 'InputLayer', name: 'image', config: { name: 'image', batch_input_shape: [null, 4] }, inbound_nodes: [] },
        ...Array.from({ length: depth }, (_, i) => ({
          class_name: 'Activation',
          name: `relu${i}`,
          config: { name: `relu${i}`, activation: 'relu' },
          inbound_nodes: call(i === 0 ? 'image' : `relu${i - 1}`),
        })),
        {
          class_name: 'Dense',
          name: 'dense',
          config: { name: 'dense', units: 3, activation: 'linear', use_bias: true },
          inbound_nodes: call(`relu${depth - 1}`),
        },
      ];
      const modelJson = {
        modelTopology: {
          class_name: 'Model',
          config: { name: 'deep', layers, input_layers: [['image', 0, 0]], output_layers: [['dense', 0, 0]] },
        },
        weightsManifest: [
          {
            paths: ['weights.bin'],
            weights: [
              { name: 'dense/kernel', shape: [4, 3], dtype: 'float32' },
              { name: 'dense/bias', shape: [3], dtype: 'float32' },
            ],
          },
        ],
      };
      await writeFile(join(root, 'model.json'), JSON.stringify(modelJson));
      await writeFile(join(root, 'weights.bin'), Buffer.alloc(WEIGHT_BYTES));
      const outcome = await isolated.call('importModel', join(root, 'model.json'));
      expect(outcome, describeOutcome(outcome)).toMatchObject({ kind: 'returned', value: { nodes: depth + 1, cutPoints: depth + 1 } });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
