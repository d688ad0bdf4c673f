import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  corePlugin,
  createReferenceBackend,
  type HostTensor,
  hostTensor,
  type Kernels,
  type Method,
  MissingKernelError,
  type ReferenceTensor,
  Rng,
  referenceKernels,
  registerPlugin,
  relativeError,
  resolveBackend,
  runProgramOnce,
  type SignedProgram,
  smallCnn,
  type TrainConfig,
} from '@gradfeat/core';
import { describe, expect, it } from 'vitest';
import { compareKernelCase, kernelConformanceCases, signedOnReference } from '../../../test-support/kernel-conformance.js';
import { jvpAndFiniteDifferences, ruleCases } from '../../../test-support/rule-checks.js';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { adaptNetwork, type LabelledImages } from '../examples/adapt-network.js';
import { arrayBackendPlugin, arrayPlugin, referenceWith } from '../examples/array-backend.js';
import { cachedTrunkOutputs } from '../examples/feature-cache.js';

/** The conformance cases that use only elementwise kernels, which is all the example plugin provides. */
const ELEMENTWISE_CASES = [
  'add, sub, mul, div and scalar with NumPy broadcasting',
  'maximum, minimum, greater and less with broadcasting and ties',
  'exp, log, abs and sqrt',
  'constant',
];

function conformanceCase(name: string) {
  const found = kernelConformanceCases().find((c) => c.name === name);
  if (!found) throw new Error(`test-support has no kernel conformance case '${name}'`);
  return found;
}

describe('the example backend plugin (guide/backends.md)', () => {
  const reference = createReferenceBackend();

  it.each(ELEMENTWISE_CASES)('matches the float64 reference on the conformance case "%s" (relative error ≤ 1e-6)', async (name) => {
    const backend = await arrayBackendPlugin.create();
    expect(await compareKernelCase(conformanceCase(name), backend, reference, 1e-6)).toEqual([]);
  });

  it('passes the finite-difference check of the ReLU, ReLU6, LeakyReLU and Add rules (float64 inside, 1e-6)', async () => {
    const backend = await arrayBackendPlugin.create();
    const cases = ruleCases().filter((c) => ['ReLU', 'ReLU6', 'LeakyReLU α = 0.2', 'Add'].includes(c.name));
    expect(cases).toHaveLength(4);
    for (const ruleCase of cases) {
      const { jvp, finiteDifference } = await jvpAndFiniteDifferences(backend, ruleCase, 1e-3);
      expect(finiteDifference.data.some((v) => v !== 0)).toBe(true);
      expect(relativeError(jvp.data, finiteDifference.data).relative, ruleCase.name).toBeLessThanOrEqual(1e-6);
    }
  });

  it('rejects a program that needs a kernel it lacks with MissingKernelError naming the kernel', async () => {
    const convolution = kernelConformanceCases().find((c) => c.name.startsWith('conv2d'));
    if (!convolution) throw new Error('test-support has no conv2d conformance case');
    const program = signedOnReference(convolution.program, convolution.inputs);
    const run = runProgramOnce(await arrayBackendPlugin.create(), program, convolution.inputs, convolution.name);
    await expect(run).rejects.toThrow(MissingKernelError);
    await expect(run).rejects.toMatchObject({ backend: 'array-js', kernel: 'conv2d' });
  });

  it('reports shapes that do not broadcast, naming the kernel', async () => {
    const backend = await arrayBackendPlugin.create();
    const program = await backend.compile({
      program: (k, { a, b }) => ({ sum: k.add(a, b) }),
      inputs: { a: [2, 3], b: [2] },
      outputs: { sum: [2, 3] },
    });
    await expect(program.run({ a: hostTensor([2, 3]), b: hostTensor([2]) })).rejects.toThrow(
      /add: shapes \[2, 3\] and \[2\] do not broadcast/,
    );
  });

  it('is resolved by priority once registered, and the reference stays selectable by name', async () => {
    registerPlugin(corePlugin);
    registerPlugin(arrayPlugin);
    expect((await resolveBackend()).name).toBe('array-js');
    expect((await resolveBackend('js')).name).toBe('js-reference');
  });

  it('gives the result the usage snippet states', async () => {
    registerPlugin(arrayPlugin);
    const backend = await resolveBackend('array');
    const relu: SignedProgram = {
      program: (k, { x }) => ({ y: k.maximum(x, k.scalar(0)) }),
      inputs: { x: [-1, 4] },
      outputs: { y: [-1, 4] },
    };
    const program = await backend.compile(relu);
    const { y } = await program.run({ x: hostTensor([1, 4], [-2, -1, 1, 2]) });
    expect(Array.from(y.data)).toEqual([0, 0, 1, 2]);
  });

  it('referenceWith runs the replacement kernel and the reference for the rest', async () => {
    let calls = 0;
    const matMul: Kernels<ReferenceTensor>['matMul'] = (a, b, transposeA, transposeB) => {
      calls++;
      return referenceKernels().matMul(a, b, transposeA, transposeB);
    };
    const swapped = referenceWith('reference with a counted matMul', { matMul });
    expect(await compareKernelCase(conformanceCase('matMul with every combination of transpose flags'), swapped, reference, 1e-6)).toEqual(
      [],
    );
    expect(calls).toBe(4);
  });
});

/** Images whose class is their brightness: class 1 pixels in [0.5, 1], class 0 pixels in [0, 0.5]. */
function brightnessTask(rng: Rng, count: number): LabelledImages {
  const images = hostTensor([count, 1, 8, 8]);
  const targets = hostTensor([count, 2]);
  const pixels = 64;
  for (let n = 0; n < count; n++) {
    const label = n % 2;
    targets.data[n * 2 + label] = 1;
    for (let i = 0; i < pixels; i++) images.data[n * pixels + i] = 0.5 * (label + rng.uniform());
  }
  return { images, targets };
}

describe('the library example (guide/concepts.md)', () => {
  it('runs all four methods on a cut, and the linear probe learns a linearly decodable task', async () => {
    const rng = new Rng(3);
    const network = smallCnn({ input: [1, 8, 8], channels: [4, 4], strides: [1, 1], classes: 2, seed: 3 });
    const linearised: TrainConfig = { epochs: 4, batchSize: 16, seed: 3, optimiser: { kind: 'adam', learningRate: 1e-2 } };
    const configs: Record<Method, TrainConfig> = {
      activation: { epochs: 30, batchSize: 16, seed: 3, optimiser: { kind: 'adam', learningRate: 5e-2, beta1: 0.9 } },
      gradient: linearised,
      full: linearised,
      finetune: linearised,
    };
    const data = { train: brightnessTask(rng, 64), test: brightnessTask(rng, 64) };
    const results = await adaptNetwork(createReferenceBackend(), network, 'block1', data, configs);
    expect(results.map((r) => r.method)).toEqual(['activation', 'gradient', 'full', 'finetune']);
    for (const result of results) expect(Number.isFinite(result.finalLoss), result.method).toBe(true);
    expect(results[0].metrics.top1).toBeGreaterThanOrEqual(0.9);
  });
});

const CIFAR_FILE = sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin');
const RECORD_BYTES = 1 + 3 * 32 * 32;

/** Per-channel means of [rows, 3, H, W] images: a stand-in trunk that is cheap and easy to check. */
async function channelMeans(images: HostTensor): Promise<HostTensor> {
  const [rows, channels, height, width] = images.shape;
  const plane = height * width;
  const means = hostTensor([rows, channels]);
  for (let p = 0; p < rows * channels; p++) {
    let total = 0;
    for (let i = 0; i < plane; i++) total += images.data[p * plane + i];
    means.data[p] = total / plane;
  }
  return means;
}

describeWithShared('the feature-cache example (guide/datasets.md) on the shared CIFAR-10 records', () => {
  it('caches one row per image with its label, and reopens the cache without running the trunk', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'gradfeat-docs-cache-'));
    let batches = 0;
    const options = {
      directory,
      dataset: `cifar10:${CIFAR_FILE}`,
      split: 'train',
      transform: { size: [32, 32], crop: 'center' } as const,
      modelHash: 'channel-means',
      cut: 'input',
      extract: async (images: HostTensor) => {
        batches++;
        return channelMeans(images);
      },
      sampleShape: [3],
      workers: 0,
    };
    try {
      const cache = await cachedTrunkOutputs(options);
      expect(cache.manifest.complete).toBe(true);
      expect(cache.manifest.counts).toEqual({ images: 4000, rows: 4000, skipped: 0 });
      expect(batches).toBe(Math.ceil(4000 / 256));
      // The shared README's first ten labels: frog, truck, truck, deer, automobile, automobile, bird, horse, ship, cat.
      expect(cache.targets.kind === 'single-label' && Array.from(cache.targets.labels.subarray(0, 10))).toEqual([
        6, 9, 9, 4, 1, 1, 2, 7, 8, 3,
      ]);

      // Independent reference: the channel means straight from the file's R, G and B planes, as x/255.
      const bytes = readFileSync(CIFAR_FILE);
      const expected = new Float64Array(4000 * 3);
      for (let r = 0; r < 4000; r++) {
        for (let c = 0; c < 3; c++) {
          let total = 0;
          for (let i = 0; i < 1024; i++) total += bytes[r * RECORD_BYTES + 1 + c * 1024 + i];
          expected[r * 3 + c] = total / 1024 / 255;
        }
      }
      const rows = await cache.source.read(Array.from({ length: 4000 }, (_, i) => i));
      expect(rows.shape).toEqual([4000, 3]);
      expect(relativeError(rows.data, expected).relative).toBeLessThan(1e-6);

      const reopened = await cachedTrunkOutputs(options);
      expect(batches).toBe(Math.ceil(4000 / 256));
      expect(reopened.manifest.shards).toEqual(cache.manifest.shards);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
