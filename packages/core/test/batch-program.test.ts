import { describe, expect, it } from 'vitest';
import {
  compileBatchProgram,
  createReferenceBackend,
  forwardProgram,
  INPUT,
  mapBatches,
  memorySource,
  normalTensor,
  OUTPUT,
  Rng,
  relativeError,
  runProgramOnce,
  smallCnn,
} from '../src/index.js';

const backend = createReferenceBackend();
const network = () => smallCnn({ input: [2, 6, 6], channels: [3, 4], strides: [1, 2], classes: 3, seed: 1 });

describe('one runner feeds batches to any compiled program', () => {
  it('mapBatches over uneven batches stacks the rows one run over all samples gives (relative error < 1e-6)', async () => {
    const graph = network();
    const images = normalTensor(new Rng(2), [5, ...graph.inputs[0].shape.slice(1)]);
    const whole = (await runProgramOnce(backend, forwardProgram(graph), { [INPUT]: images }, 'whole'))[OUTPUT];
    const batched = await mapBatches(backend, forwardProgram(graph), memorySource(images), 2, OUTPUT);
    expect(batched.shape).toEqual(whole.shape);
    expect(relativeError(batched.data, whole.data).relative).toBeLessThan(1e-6);
  });

  it('compiles once for a free batch axis: batches of 1 and 4 run on the same compiled program', async () => {
    const graph = network();
    const sample = graph.inputs[0].shape.slice(1);
    const compiled = await compileBatchProgram(backend, forwardProgram(graph), { name: 'free batch' });
    try {
      for (const rows of [1, 4]) {
        const outputs = await compiled.run({ [INPUT]: normalTensor(new Rng(rows), [rows, ...sample]) });
        expect(outputs[OUTPUT].shape).toEqual([rows, 3]);
      }
    } finally {
      compiled.dispose();
    }
  });

  it('refuses a program none of whose inputs is batched, naming it and its inputs', async () => {
    const fixed = { ...forwardProgram(network()), inputs: { [INPUT]: [1, 2, 6, 6] } };
    await expect(compileBatchProgram(backend, fixed, { name: 'one image' })).rejects.toThrow(
      "program 'one image' batches none of its inputs (inputs), so it cannot run over batches",
    );
  });
});
