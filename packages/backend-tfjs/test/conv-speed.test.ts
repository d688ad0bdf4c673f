import { type Backend, type Conv2DAttrs, type HostTensor, type Program, Rng, relativeError } from '@gradfeat/core';
import { describe, expect, it } from 'vitest';
import { uniformTensor } from '../../../test-support/kernel-conformance.js';
import { createTfjsBackend } from '../src/index.js';

/**
 * The timings quoted in the README: median wall time of one 3×3 conv forward plus both backprops
 * (NCHW, stride 1, pads 1), uploads and downloads included. Opt-in with GRADFEAT_TFJS_BENCH=1, since
 * the wasm case takes about 10 s on a 2-core machine. The outputs are checked too: the conv is linear
 * in x and in w, so ⟨dy, conv(x, w)⟩ = ⟨dx, x⟩ = ⟨dw, w⟩ must hold for the backprops of dy.
 */

const REPEATS = 5;
const ADJOINT_TOLERANCE = 1e-4;
const attrs: Conv2DAttrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 };

interface ConvStep {
  readonly medianMs: number;
  /** Process CPU time of the median run: close to the wall time of an idle machine, as every runtime here is single-threaded. */
  readonly medianCpuMs: number;
  readonly inputs: Record<string, HostTensor>;
  readonly outputs: Record<string, HostTensor>;
}

async function timeConvStep(backend: Backend, [n, c, h, w]: readonly number[]): Promise<ConvStep> {
  const rng = new Rng(11);
  const inputs = { x: uniformTensor(rng, [n, c, h, w]), w: uniformTensor(rng, [c, c, 3, 3]), dy: uniformTensor(rng, [n, c, h, w]) };
  const program: Program = (k, { x, w: weight, dy }) => ({
    y: k.conv2d(x, weight, undefined, attrs),
    dx: k.conv2dBackpropInput(dy, weight, [h, w], attrs),
    dw: k.conv2dBackpropFilter(x, dy, k.shape(weight), attrs),
  });
  const compiled = await backend.compile(program, {});
  let outputs = await compiled.run(inputs);
  const runs: { wallMs: number; cpuMs: number }[] = [];
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    outputs = await compiled.run(inputs);
    const cpu = process.cpuUsage(cpuStart);
    runs.push({ wallMs: performance.now() - start, cpuMs: (cpu.user + cpu.system) / 1000 });
  }
  compiled.dispose();
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return { medianMs: median(runs.map((r) => r.wallMs)), medianCpuMs: median(runs.map((r) => r.cpuMs)), inputs, outputs };
}

function describeTime(step: ConvStep): string {
  return `${step.medianMs.toFixed(0)} ms wall, ${step.medianCpuMs.toFixed(0)} ms CPU`;
}

function dot(a: HostTensor, b: HostTensor): number {
  let total = 0;
  for (let i = 0; i < a.data.length; i++) total += a.data[i] * b.data[i];
  return total;
}

function expectAdjoint({ inputs, outputs }: ConvStep): void {
  const forward = dot(inputs.dy, outputs.y);
  expect(Math.abs(dot(outputs.dx, inputs.x) - forward) / Math.abs(forward)).toBeLessThan(ADJOINT_TOLERANCE);
  expect(Math.abs(dot(outputs.dw, inputs.w) - forward) / Math.abs(forward)).toBeLessThan(ADJOINT_TOLERANCE);
}

describe.runIf(process.env.GRADFEAT_TFJS_BENCH === '1')('conv forward + both backprops, median of 5 (GRADFEAT_TFJS_BENCH=1)', () => {
  it('tfjs-wasm on [64, 256, 8, 8]', async () => {
    const step = await timeConvStep(await createTfjsBackend({ runtime: 'wasm' }), [64, 256, 8, 8]);
    console.log(`tfjs-wasm [64, 256, 8, 8]: ${describeTime(step)}`);
    expectAdjoint(step);
  });

  it('tfjs-cpu on [8, 32, 8, 8], backprops from forward convs against its native kernels', async () => {
    const shape = [8, 32, 8, 8];
    const built = await timeConvStep(await createTfjsBackend({ runtime: 'cpu' }), shape);
    const native = await timeConvStep(await createTfjsBackend({ runtime: 'cpu', nativeConvBackprop: true }), shape);
    const wasm = await timeConvStep(await createTfjsBackend({ runtime: 'wasm' }), shape);
    console.log(
      `[8, 32, 8, 8]: tfjs-cpu ${describeTime(built)} (native backprops ${describeTime(native)}), tfjs-wasm ${describeTime(wasm)}`,
    );
    expectAdjoint(built);
    for (const output of ['dx', 'dw'])
      expect(relativeError(built.outputs[output].data, native.outputs[output].data).relative).toBeLessThan(1e-5);
  });
});
