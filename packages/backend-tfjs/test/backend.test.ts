import { type Conv2DAttrs, hostTensor, runProgramOnce, type SignedProgram } from '@gradfeat/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { createTfjsBackend, type TfjsRuntime } from '../src/index.js';

/** Tensor memory behaviour of the eager TF.js backend: uploads, intermediates and outputs. */

const table = hostTensor([2, 3], [1, 2, 3, 4, 5, 6]);
const attrs: Conv2DAttrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 };

const usesTableTwice: SignedProgram = {
  program: (k, { x }) => ({ y: k.add(k.mul(x, k.constant(table)), k.constant(table)) }),
  inputs: { x: [2, 3] },
  outputs: { y: [2, 3] },
};
const returnsTable: SignedProgram = {
  program: (k) => ({ table: k.constant(table), reshaped: k.reshape(k.constant(table), [3, 2]) }),
  inputs: {},
  outputs: { table: [2, 3], reshaped: [3, 2] },
};
const convAndBackprops: SignedProgram = {
  program: (k, { x, w }) => {
    const y = k.conv2d(x, w, undefined, attrs);
    return { y, dw: k.conv2dBackpropFilter(x, y, k.shape(w), attrs), dx: k.conv2dBackpropInput(y, w, [4, 4], attrs) };
  },
  inputs: { x: [1, 2, 4, 4], w: [3, 2, 3, 3] },
  outputs: { y: [1, 3, 4, 4], dw: [3, 2, 3, 3], dx: [1, 2, 4, 4] },
};

const x = hostTensor([2, 3], [1, 1, 1, 2, 2, 2]);
const image = hostTensor(
  [1, 2, 4, 4],
  Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)),
);
const weight = hostTensor(
  [3, 2, 3, 3],
  Float32Array.from({ length: 54 }, (_, i) => Math.cos(i)),
);

for (const runtime of ['wasm', 'cpu'] as const satisfies readonly TfjsRuntime[]) {
  describe(`tfjs-${runtime} tensor memory`, () => {
    it('uploads a constant once per HostTensor and keeps it across runs until dispose()', async () => {
      const backend = await createTfjsBackend({ runtime });
      const before = tf.memory().numTensors;
      const first = await runProgramOnce(backend, usesTableTwice, { x }, 'constant twice');
      expect(tf.memory().numTensors).toBe(before + 1);
      const second = await runProgramOnce(backend, usesTableTwice, { x }, 'constant twice');
      expect(tf.memory().numTensors).toBe(before + 1);
      expect([...first.y.data]).toEqual([2, 4, 6, 12, 15, 18]);
      expect([...second.y.data]).toEqual([...first.y.data]);
      backend.dispose?.();
      expect(tf.memory().numTensors).toBe(before);
    });

    it('keeps the values of the first upload of a constant, as the reference backend does', async () => {
      const backend = await createTfjsBackend({ runtime });
      const mutable = hostTensor([2, 3], [1, 2, 3, 4, 5, 6]);
      const readsMutable: SignedProgram = {
        program: (k) => ({ y: k.mul(k.constant(mutable), k.scalar(2)) }),
        inputs: {},
        outputs: { y: [2, 3] },
      };
      await runProgramOnce(backend, readsMutable, {}, 'reads a constant');
      mutable.data.fill(0);
      expect([...(await runProgramOnce(backend, readsMutable, {}, 'reads a constant')).y.data]).toEqual([2, 4, 6, 8, 10, 12]);
      backend.dispose?.();
    });

    it('returns cached constants as copies and does not free them', async () => {
      const backend = await createTfjsBackend({ runtime });
      const first = await runProgramOnce(backend, returnsTable, {}, 'returns a constant');
      first.table.data.fill(0);
      first.reshaped.data.fill(0);
      const second = await runProgramOnce(backend, returnsTable, {}, 'returns a constant');
      expect([...second.table.data]).toEqual([...table.data]);
      expect(second.reshaped.shape).toEqual([3, 2]);
      expect([...second.reshaped.data]).toEqual([...table.data]);
      backend.dispose?.();
    });

    it('frees every intermediate of a conv forward and both backprops', async () => {
      const backend = await createTfjsBackend({ runtime });
      const compiled = await backend.compile(convAndBackprops);
      await compiled.run({ x: image, w: weight });
      const settled = tf.memory().numTensors;
      for (let run = 0; run < 3; run++) await compiled.run({ x: image, w: weight });
      expect(tf.memory().numTensors).toBe(settled);
    });
  });
}

describe('several TF.js backends in one process', () => {
  it('each run activates its own runtime, so alternating backends agree', async () => {
    const wasm = await createTfjsBackend({ runtime: 'wasm' });
    const cpu = await createTfjsBackend({ runtime: 'cpu' });
    const onWasm = await runProgramOnce(wasm, convAndBackprops, { x: image, w: weight }, 'conv');
    expect(tf.getBackend()).toBe('wasm');
    const onCpu = await runProgramOnce(cpu, convAndBackprops, { x: image, w: weight }, 'conv');
    expect(tf.getBackend()).toBe('cpu');
    for (const output of ['y', 'dw', 'dx']) {
      const difference = onWasm[output].data.map((v, i) => Math.abs(v - onCpu[output].data[i]));
      expect(Math.max(...difference)).toBeLessThan(1e-4);
    }
  });
});
