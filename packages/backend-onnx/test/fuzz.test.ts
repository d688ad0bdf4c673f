import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import onnxProto, { type onnx } from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fuzz from '../../../test-support/fuzz.js';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';
import { hasShared, sharedPath } from '../../../test-support/shared.js';
import { floats, int64s, modelBytes, node } from './model-builder.js';

const { ModelProto } = onnxProto.onnx;
/** Folding's budget (fold.ts): 2²⁴ values plus two per byte of the file, 8 bytes each, computed once and copied at most once. */
const foldingBound = (fileBytes: number) => 2 * 8 * (2 ** 24 + 2 * fileBytes);

/**
 * What structural mutations edit: the graph, with the data of small initializers (the constants of
 * shape computations) but not of weights, so that most mutations change what the importer computes.
 */
interface Skeleton {
  nodes: unknown[];
  inputs: unknown[];
  outputs: unknown[];
  initializers: Record<string, unknown>[];
}

/** Initializers up to this many bytes (shape constants) keep their data in the skeleton. */
const SMALL_INITIALIZER_BYTES = 256;

function skeletonOf(model: onnx.ModelProto): Skeleton {
  const graph = ModelProto.toObject(model, { longs: Number, bytes: Array, defaults: false }).graph;
  return {
    nodes: graph.node ?? [],
    inputs: graph.input ?? [],
    outputs: graph.output ?? [],
    initializers: (graph.initializer ?? []).map((tensor: Record<string, unknown>) => {
      const { name, dims, dataType } = tensor;
      return JSON.stringify(tensor).length <= SMALL_INITIALIZER_BYTES * 4 ? tensor : { name, dims, dataType };
    }),
  };
}

/** The model with a (mutated) skeleton: initializer data stays where it was, under the skeleton's names and dims. */
function withSkeleton(model: onnx.ModelProto, skeleton: Skeleton): Uint8Array {
  const object = ModelProto.toObject(model, { longs: Number, bytes: Array, defaults: false });
  const initializers = (object.graph.initializer ?? []) as Record<string, unknown>[];
  object.graph.node = skeleton.nodes;
  object.graph.input = skeleton.inputs;
  object.graph.output = skeleton.outputs;
  object.graph.initializer = Array.isArray(skeleton.initializers)
    ? skeleton.initializers.map((entry, i) => ({ ...(initializers[i % Math.max(1, initializers.length)] ?? {}), ...entry }))
    : [];
  return ModelProto.encode(ModelProto.fromObject(object)).finish();
}

/**
 * A small PyTorch-style CNN: conv, batch norm, pooling, a padding built by ConstantOfShape, a flatten
 * computed from Shape; and folded constants that grow with their inputs' sizes (a broadcast, a
 * concatenation, a transpose), for mutations of those sizes to reach.
 */
function smallCnn(): Uint8Array {
  return modelBytes({
    input: { name: 'x', dims: ['N', 3, 8, 8] },
    outputs: ['logits'],
    initializers: [
      floats(
        'W1',
        [4, 3, 3, 3],
        Array.from({ length: 108 }, (_, i) => Math.sin(i)),
      ),
      floats('B1', [4], [0.1, 0.2, 0.3, 0.4]),
      floats('bn.scale', [4], [1, 1.5, 0.5, 2]),
      floats('bn.bias', [4], [0, 0.1, 0.2, 0.3]),
      floats('bn.mean', [4], [0, 0.1, 0, 0.1]),
      floats('bn.var', [4], [1, 2, 1, 2]),
      floats(
        'W2',
        [5, 64],
        Array.from({ length: 320 }, (_, i) => Math.cos(i)),
      ),
      floats('B2', [5], [0, 0, 0, 0, 0]),
      int64s('padShape', [8]),
      int64s('zero', [0], []),
      int64s('axes', [0]),
      int64s('minusOne', [-1]),
      int64s('rows', [4, 1]),
      int64s('columns', [1, 4]),
    ],
    nodes: [
      node('Conv', ['x', 'W1', 'B1'], 'c1', { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('BatchNormalization', ['c1', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], 'bn'),
      node('Relu', ['bn'], 'r'),
      node('ConstantOfShape', ['padShape'], 'pads', { value: int64s('', [0]) }),
      node('Pad', ['r', 'pads'], 'padded'),
      node('MaxPool', ['padded'], 'pool', { kernel_shape: [2, 2], strides: [2, 2] }),
      node('Shape', ['pool'], 'shape'),
      node('Gather', ['shape', 'zero'], 'batch', { axis: 0 }),
      node('Unsqueeze', ['batch', 'axes'], 'batch1'),
      node('Concat', ['batch1', 'minusOne'], 'target', { axis: 0 }),
      node('Reshape', ['pool', 'target'], 'flat'),
      node('Gemm', ['flat', 'W2', 'B2'], 'logits', { transB: 1 }),
      node('ConstantOfShape', ['rows'], 'column', { value: floats('', [1], [1]) }),
      node('ConstantOfShape', ['columns'], 'row', { value: floats('', [1], [2]) }),
      node('Add', ['column', 'row'], 'grid'),
      node('Concat', ['grid', 'grid'], 'grids', { axis: 0 }),
      node('Transpose', ['grids'], 'gridsT', { perm: [1, 0] }),
    ],
  });
}

describe('fuzzing the ONNX importer (import and cut points, in a child process)', () => {
  let root: string;
  let cases = 0;
  const isolated = new Isolated(fileURLToPath(new URL('./isolated-targets.ts', import.meta.url)), fuzz.CALL_TIMEOUT_MS);
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gradfeat-fuzz-onnx-'));
  });
  afterAll(async () => {
    await isolated.close();
    await rm(root, { recursive: true, force: true });
  });

  async function check(bytes: Uint8Array, what: string) {
    const file = join(root, `case-${cases++}.onnx`);
    await writeFile(file, bytes);
    const outcome = await isolated.call('describeModel', file);
    fuzz.expectClean(
      outcome,
      {
        names: [file],
        errors: ['Error'],
        maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES + foldingBound(bytes.length) + 32 * bytes.length,
      },
      `${what}, ${bytes.length} bytes`,
    );
  }

  async function campaign(seedBytes: readonly Uint8Array[], runs: number) {
    const models = seedBytes.map((bytes) => ModelProto.decode(bytes));
    const skeletons = models.map(skeletonOf);
    const seeds = seedBytes.map((bytes) => ({ bytes }));
    for (const [i, bytes] of seedBytes.entries()) {
      const file = join(root, `seed-${i}.onnx`);
      await writeFile(file, bytes);
      const outcome = await isolated.call('describeModel', file);
      expect(outcome.kind, `seed ${i}: ${describeOutcome(outcome)}`).toBe('returned');
    }
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('graph' as const), json: fuzz.mutatedJson(skeletons) }),
      fc.record({ kind: fc.constant('bytes' as const), bytes: fuzz.mutatedBytes(seeds) }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (input) => {
        if (input.kind === 'bytes') return check(fuzz.applyByteMutations(seeds, input.bytes), 'mutated bytes');
        let bytes: Uint8Array;
        try {
          bytes = withSkeleton(models[input.json.seed], fuzz.applyJsonMutations(skeletons, input.json) as Skeleton);
        } catch {
          return; // Not expressible as a protobuf message: covered by the byte mutations.
        }
        return check(bytes, 'mutated graph');
      }),
      { seed: fuzz.SEED, numRuns: runs },
    );
  }

  it(`${fuzz.runs(500)} mutations of a small CNN (seed ${fuzz.SEED}) each import, or fail with an error naming the file`, async () => {
    await campaign([smallCnn()], fuzz.runs(500));
  });

  it.skipIf(!hasShared)(
    `${fuzz.runs(40)} mutations of the shared ResNet-20 export (seed ${fuzz.SEED}) each import, or fail naming the file`,
    async () => {
      await campaign([await readFile(sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx'))], fuzz.runs(40));
    },
  );
});
