import type { Backend, HostTensor, OutputSignature, Program, SignedProgram } from '@gradfeat/core';
import { describe, expect, it } from 'vitest';
import { backendForSuite } from './kernel-conformance.js';

const add: Program = (k, { x, y }) => ({ z: k.add(x, y) });
const sum = (inputs: SignedProgram['inputs'], outputs: OutputSignature = { z: inputs.x }): SignedProgram => ({
  program: add,
  inputs,
  outputs,
});
const tensor = (shape: number[]): HostTensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

/**
 * Every backend checks a run's feeds against the compiled signature, as ONNX Runtime does, with the
 * same errors: an input the program does not have, one it needs, a wrong shape, unequal batch sizes.
 * And it checks what the program returns against the signature's outputs: a graph backend when it
 * traces the program, an eager one on every run.
 */
export function describeFeedChecks(backendName: string, makeBackend: () => Promise<Backend> | Backend): void {
  describe(`${backendName} checks feeds and outputs against the program's signature`, () => {
    const started = backendForSuite(backendName, makeBackend);

    it('names a wrong, missing or extra input, and a wrong shape with the expected and the received one', async () => {
      const compiled = await started().compile(sum({ x: [-1, 3], y: [-1, 3] }), { name: 'sum' });
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
      const compiled = await started().compile(sum({ x: [-1, 3], y: [3] }), { name: 'bias' });
      try {
        await expect(compiled.run({ x: tensor([4, 3]), y: tensor([1, 3]) })).rejects.toThrow(
          "program 'bias': input 'y' has shape [1, 3], expected [3]",
        );
        expect((await compiled.run({ x: tensor([4, 3]), y: tensor([3]) })).z.shape).toEqual([4, 3]);
      } finally {
        compiled.dispose();
      }
    });

    /** Compiles and runs once on a batch of 2: a graph backend refuses the outputs when it traces, an eager one when it runs. */
    const compileAndRun = async (program: SignedProgram, name: string) => {
      const compiled = await started().compile(program, { name });
      try {
        return await compiled.run({ x: tensor([2, 3]), y: tensor([2, 3]) });
      } finally {
        compiled.dispose();
      }
    };

    it('refuses outputs of another shape, missing or not in the signature, naming the program and the output', async () => {
      const inputs = { x: [-1, 3], y: [-1, 3] };
      await expect(compileAndRun(sum(inputs, { z: [-1, 4] }), 'wide')).rejects.toThrow(
        /program 'wide': output 'z' has shape \[(N|2), 3\], expected \[N, 4\]/,
      );
      await expect(compileAndRun(sum(inputs, { z: [3] }), 'unbatched')).rejects.toThrow(
        /program 'unbatched': output 'z' has shape \[(N|2), 3\], expected \[3\]/,
      );
      await expect(compileAndRun(sum(inputs, { z: [-1, 3], w: [-1, 3] }), 'two')).rejects.toThrow(
        "program 'two' did not return its output 'w' of shape [N, 3]",
      );
      await expect(compileAndRun(sum(inputs, { y: [-1, 3] }), 'renamed')).rejects.toThrow(
        "program 'renamed' returned 'z', which its signature does not list (outputs: y)",
      );
      expect((await compileAndRun(sum(inputs), 'declared')).z.shape).toEqual([2, 3]);
    });

    it('refuses a signature with a batch axis where no run can give one', async () => {
      await expect(started().compile(sum({ x: [3, -1], y: [3, -1] }), { name: 'late batch' })).rejects.toThrow(
        "program 'late batch': input 'x' has shape [3, N]; sizes must be positive, with -1 allowed only for the batch (axis 0)",
      );
      await expect(started().compile(sum({ x: [2, 3], y: [2, 3] }, { z: [-1, 3] }), { name: 'no batch' })).rejects.toThrow(
        "program 'no batch': output 'z' has shape [N, 3]; sizes must be positive, with -1 (the batch) only when an input is batched",
      );
    });
  });
}
