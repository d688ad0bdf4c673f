import { type Backend, type Conv2DAttrs, type HostTensor, inputShapesOf, type Program, Rng, relativeError } from '@gradfeat/core';
import { uniformTensor } from '../../../test-support/kernel-conformance.js';
import { createTfjsBackend } from '../src/index.js';

/**
 * The timings quoted in the README: median wall time of one 3×3 conv forward plus both backprops
 * (NCHW, stride 1, pads 1), uploads and downloads included; the wasm case takes about 10 s on a
 * 2-core machine. The outputs are checked too: the conv is linear in x and in w, so
 * ⟨dy, conv(x, w)⟩ = ⟨dx, x⟩ = ⟨dw, w⟩ must hold for the backprops of dy.
 *   npx tsx --conditions=source packages/backend-tfjs/bench/conv-speed.ts
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
  const compiled = await backend.compile(program, inputShapesOf(inputs, []));
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

function checkAdjoint({ inputs, outputs }: ConvStep): void {
  const forward = dot(inputs.dy, outputs.y);
  for (const [gradient, input] of [
    ['dx', 'x'],
    ['dw', 'w'],
  ]) {
    const gap = Math.abs(dot(outputs[gradient], inputs[input]) - forward) / Math.abs(forward);
    if (!(gap < ADJOINT_TOLERANCE)) throw new Error(`adjoint test of ${gradient}: relative gap ${gap} ≥ ${ADJOINT_TOLERANCE}`);
  }
}

const wasm = await timeConvStep(await createTfjsBackend({ runtime: 'wasm' }), [64, 256, 8, 8]);
console.log(`tfjs-wasm [64, 256, 8, 8]: ${describeTime(wasm)}`);
checkAdjoint(wasm);

const shape = [8, 32, 8, 8];
const built = await timeConvStep(await createTfjsBackend({ runtime: 'cpu' }), shape);
const native = await timeConvStep(await createTfjsBackend({ runtime: 'cpu', nativeConvBackprop: true }), shape);
const small = await timeConvStep(await createTfjsBackend({ runtime: 'wasm' }), shape);
console.log(`[8, 32, 8, 8]: tfjs-cpu ${describeTime(built)} (native backprops ${describeTime(native)}), tfjs-wasm ${describeTime(small)}`);
checkAdjoint(built);
for (const output of ['dx', 'dw']) {
  const error = relativeError(built.outputs[output].data, native.outputs[output].data).relative;
  if (!(error < 1e-5)) throw new Error(`${output}: backprop built from forward convs differs from tfjs-cpu's own by ${error}`);
}
