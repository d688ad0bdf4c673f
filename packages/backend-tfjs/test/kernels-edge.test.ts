import { type Backend, type Conv2DAttrs, createReferenceBackend, type PoolAttrs, Rng, windowedSize } from '@gradfeat/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareKernelCase, type KernelCase, quantizedTensor, uniformTensor } from '../../../test-support/kernel-conformance.js';
import { createTfjsBackend, type TfjsRuntime } from '../src/index.js';

/**
 * Geometries that take the less travelled paths of the forward-built transposes, beyond the shared
 * conformance cases: stride and dilation both above 1 (TF.js refuses them in one conv, so the kernels
 * subsample), pads wider than the kernel reaches (the transposes crop instead of padding), grouped and
 * depthwise convs with strides, and pools whose stride skips input rows. Each runs on wasm and cpu in
 * the same process, which also exercises switching TF.js's process-wide backend between runs.
 */

const TOLERANCE = 1e-4;

function outputSize(
  input: readonly number[],
  kernel: readonly number[],
  strides: readonly number[],
  pads: readonly number[],
  dilations = [1, 1],
) {
  return [0, 1].map((axis) => windowedSize(input[2 + axis], kernel[axis], strides[axis], pads[axis], pads[axis + 2], dilations[axis]));
}

function convEdgeCase(
  rng: Rng,
  name: string,
  input: [number, number, number, number],
  filter: [number, number, number, number],
  attrs: Conv2DAttrs,
): KernelCase {
  const [ho, wo] = outputSize(input, filter.slice(2), attrs.strides, attrs.pads, [...attrs.dilations]);
  const dy = uniformTensor(rng, [input[0], filter[0], ho, wo]);
  return {
    name,
    inputs: { x: uniformTensor(rng, input), w: uniformTensor(rng, filter), dy },
    program: (k, i) => ({
      conv2d: k.conv2d(i.x, i.w, undefined, attrs),
      conv2dBackpropInput: k.conv2dBackpropInput(i.dy, i.w, [input[2], input[3]], attrs),
      conv2dBackpropFilter: k.conv2dBackpropFilter(i.x, i.dy, filter, attrs),
    }),
  };
}

function poolEdgeCase(rng: Rng, name: string, input: [number, number, number, number], attrs: PoolAttrs): KernelCase {
  const [ho, wo] = outputSize(input, attrs.kernel, attrs.strides, attrs.pads);
  const x = quantizedTensor(rng, input, [-1, -0.5, 0, 0.5, 1]);
  const [n, c, h, w] = input;
  return {
    name,
    inputs: { x, dx: uniformTensor(rng, input), dy: uniformTensor(rng, [n, c, ho, wo]) },
    program: (k, i) => ({
      avgPool: k.avgPool(i.x, attrs),
      avgPoolBackprop: k.avgPoolBackprop(i.dy, [h, w], attrs),
      maxPool: k.maxPool(i.x, attrs),
      maxPoolJvp: k.maxPoolJvp(i.x, i.dx, attrs),
      maxPoolBackprop: k.maxPoolBackprop(i.x, i.dy, attrs),
    }),
  };
}

function edgeCases(): KernelCase[] {
  const rng = new Rng(7);
  return [
    convEdgeCase(rng, 'conv stride 2 and dilation 2 on both axes', [2, 3, 11, 10], [4, 3, 3, 2], {
      strides: [2, 2],
      pads: [2, 1, 0, 2],
      dilations: [2, 2],
      groups: 1,
    }),
    convEdgeCase(rng, 'conv with pads wider than the 2×2 kernel reaches', [1, 2, 5, 4], [3, 2, 2, 2], {
      strides: [1, 2],
      pads: [2, 1, 4, 3],
      dilations: [1, 1],
      groups: 1,
    }),
    convEdgeCase(rng, 'conv groups 3, stride 2, dilation [1, 2]', [2, 6, 9, 9], [9, 2, 3, 3], {
      strides: [2, 2],
      pads: [1, 2, 1, 2],
      dilations: [1, 2],
      groups: 3,
    }),
    convEdgeCase(rng, 'depthwise, multiplier 3, stride 2 and dilation 2', [2, 2, 10, 9], [6, 1, 3, 3], {
      strides: [2, 2],
      pads: [2, 2, 1, 2],
      dilations: [2, 2],
      groups: 2,
    }),
    poolEdgeCase(rng, 'pools 2×2 with stride 3 (skipped rows), pads, padding not counted', [2, 3, 8, 7], {
      kernel: [2, 2],
      strides: [3, 3],
      pads: [1, 0, 0, 1],
      countIncludePad: false,
    }),
    poolEdgeCase(rng, 'pools 3×1 with strides [1, 2] and padding counted', [1, 2, 6, 7], {
      kernel: [3, 1],
      strides: [1, 2],
      pads: [1, 0, 1, 0],
      countIncludePad: true,
    }),
    poolEdgeCase(rng, 'pools 1×1 with stride 2 (a single window offset)', [1, 2, 5, 5], {
      kernel: [1, 1],
      strides: [2, 2],
      pads: [0, 0, 0, 0],
    }),
  ];
}

const RUNTIMES: readonly TfjsRuntime[] = ['wasm', 'cpu'];

describe(`edge geometries on tfjs-wasm and tfjs-cpu against the float64 reference (relative error ≤ ${TOLERANCE})`, () => {
  const reference = createReferenceBackend();
  const backends = new Map<TfjsRuntime, Backend>();
  beforeAll(async () => {
    for (const runtime of RUNTIMES) backends.set(runtime, await createTfjsBackend({ runtime }));
  });
  afterAll(() => {
    for (const backend of backends.values()) backend.dispose?.();
  });
  for (const edgeCase of edgeCases()) {
    for (const runtime of RUNTIMES) {
      it(`${edgeCase.name} (${runtime})`, async () => {
        expect(await compareKernelCase(edgeCase, backends.get(runtime)!, reference, TOLERANCE)).toEqual([]);
      });
    }
  }
});
