import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';
import { floats, int64s, type ModelSpec, modelBytes, node } from './model-builder.js';

const targets = fileURLToPath(new URL('./isolated-targets.ts', import.meta.url));
const MIB = 2 ** 20;

/** `body` computes 'big' from constants; it is added to the network's input through a Dense so the graph stays valid. */
function foldingModel(body: ModelSpec['nodes'], initializers: ModelSpec['initializers'] = []): Uint8Array {
  return modelBytes({
    input: { name: 'x', dims: ['N', 4] },
    outputs: ['logits'],
    initializers: [...initializers, floats('W', [3, 4], new Array(12).fill(0.5)), floats('B', [3], [0, 0, 0])],
    nodes: [...body, node('Gemm', ['x', 'W', 'B'], 'logits', { transB: 1 })],
  });
}

describe('ONNX import bounds constant folding and stays linear in the number of nodes (in a child process)', () => {
  let root: string;
  const isolated = new Isolated(targets, 30_000);
  const write = async (name: string, bytes: Uint8Array) => {
    await writeFile(join(root, name), bytes);
    return join(root, name);
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gradfeat-hostile-onnx-'));
  });
  afterAll(async () => {
    await isolated.close();
    await rm(root, { recursive: true, force: true });
  });

  async function expectRefused(file: string, problem: RegExp) {
    const outcome = await isolated.call('describeModel', file);
    expect(outcome.kind, describeOutcome(outcome)).toBe('threw');
    if (outcome.kind !== 'threw') return;
    expect(outcome.error.message.startsWith(`${file}: `), outcome.error.message).toBe(true);
    expect(outcome.error.message).toMatch(problem);
    expect(outcome.error.causes.map((cause) => cause.name)).not.toContain('RangeError');
    expect(outcome.peakGrowthBytes, describeOutcome(outcome)).toBeLessThan(200 * MIB);
  }

  it('refuses a broadcast that would fold a 2³²-element constant, before allocating it', async () => {
    const file = await write(
      'broadcast.onnx',
      foldingModel(
        [
          node('ConstantOfShape', ['rows'], 'column', { value: floats('', [1], [1]) }),
          node('ConstantOfShape', ['columns'], 'row', { value: floats('', [1], [1]) }),
          node('Add', ['column', 'row'], 'big'),
        ],
        [int64s('rows', [65536, 1]), int64s('columns', [1, 65536])],
      ),
    );
    await expectRefused(file, /node '\/big\/Add' \(Add\): would fold a constant of shape \[65536, 65536\]/);
  });

  it('refuses many large folded constants that together exceed the folding budget', async () => {
    const nodes = Array.from({ length: 20 }, (_, i) => node('ConstantOfShape', ['shape'], `zeros${i}`, { value: floats('', [1], [0]) }));
    const file = await write('many.onnx', foldingModel(nodes, [int64s('shape', [2 ** 23])]));
    await expectRefused(file, /node '\/zeros\d+\/ConstantOfShape' \(ConstantOfShape\): folded constants would exceed/);
  });

  it('refuses a chain of concatenations that doubles a constant at every step', async () => {
    const nodes = Array.from({ length: 16 }, (_, i) =>
      node('Concat', [i === 0 ? 'seed' : `twice${i - 1}`, i === 0 ? 'seed' : `twice${i - 1}`], `twice${i}`, { axis: 0 }),
    );
    const file = await write('doubling.onnx', foldingModel(nodes, [floats('seed', [4096], new Array(4096).fill(1))]));
    await expectRefused(
      file,
      /node '\/twice\d+\/Concat' \(Concat\): (would fold a constant of shape \[\d+\]|folded constants would exceed)/,
    );
  });

  it('describes a 10,000-node chain with all its cut points, in linear time (no hang)', async () => {
    const relus = Array.from({ length: 10_000 }, (_, i) => node('Relu', [i === 0 ? 'x' : `r${i - 1}`], `r${i}`));
    const file = await write(
      'chain.onnx',
      modelBytes({
        input: { name: 'x', dims: ['N', 4] },
        outputs: ['logits'],
        initializers: [floats('W', [3, 4], new Array(12).fill(0.5)), floats('B', [3], [0, 0, 0])],
        nodes: [...relus, node('Gemm', ['r9999', 'W', 'B'], 'logits', { transB: 1 })],
      }),
    );
    const outcome = await isolated.call('describeModel', file);
    expect(outcome, describeOutcome(outcome)).toMatchObject({ kind: 'returned', value: { nodes: 10_001, cutPoints: 10_001 } });
  });
});
