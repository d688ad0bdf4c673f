import type { Backend, HostTensor, Program } from '@gradfeat/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const sum: Program = (k, { x, y }) => ({ z: k.add(x, y) });
const tensor = (shape: number[]): HostTensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

/**
 * Every backend checks a run's feeds against the compiled signature, as ONNX Runtime does, with the
 * same errors: an input the program does not have, one it needs, a wrong shape, unequal batch sizes.
 */
export function describeFeedChecks(backendName: string, makeBackend: () => Promise<Backend> | Backend): void {
  describe(`${backendName} checks feeds against the program's signature`, () => {
    let backend: Backend | undefined;
    beforeAll(async () => {
      backend = await makeBackend();
    });
    afterAll(async () => {
      await backend?.dispose?.();
    });

    it('names a wrong, missing or extra input, and a wrong shape with the expected and the received one', async () => {
      if (!backend) throw new Error(`backend ${backendName} did not start`);
      const compiled = await backend.compile(sum, { x: [-1, 3], y: [-1, 3] }, { name: 'sum' });
      try {
        const x = tensor([2, 3]);
        expect([...(await compiled.run({ x, y: x })).z.data]).toEqual([0, 0, 0, 0, 0, 0]);
        await expect(compiled.run({ x, w: x })).rejects.toThrow("program 'sum' has no input 'w' (inputs: x, y)");
        await expect(compiled.run({ x })).rejects.toThrow("program 'sum' needs input 'y' of shape [N, 3]");
        await expect(compiled.run({ x, y: tensor([2, 4]) })).rejects.toThrow("program 'sum': input 'y' has shape [2, 4], expected [N, 3]");
        await expect(compiled.run({ x, y: tensor([6]) })).rejects.toThrow("program 'sum': input 'y' has shape [6], expected [N, 3]");
        await expect(compiled.run({ x, y: tensor([1, 3]) })).rejects.toThrow("program 'sum': input 'y' has batch size 1 but 'x' has 2");
      } finally {
        compiled.dispose();
      }
    });

    it('checks fixed (non-batch) inputs exactly', async () => {
      if (!backend) throw new Error(`backend ${backendName} did not start`);
      const compiled = await backend.compile(sum, { x: [-1, 3], y: [3] }, { name: 'bias' });
      try {
        await expect(compiled.run({ x: tensor([4, 3]), y: tensor([1, 3]) })).rejects.toThrow(
          "program 'bias': input 'y' has shape [1, 3], expected [3]",
        );
        expect((await compiled.run({ x: tensor([4, 3]), y: tensor([3]) })).z.shape).toEqual([4, 3]);
      } finally {
        compiled.dispose();
      }
    });
  });
}
