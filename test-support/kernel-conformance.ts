import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  type Conv2DAttrs,
  createReferenceBackend,
  type HostTensor,
  hostTensor,
  KERNEL_NAMES,
  type KernelName,
  type Kernels,
  type PoolAttrs,
  type Program,
  type ReferenceTensor,
  referenceKernels,
  referenceRuntime,
  relativeError,
  runProgramOnce,
  type SignedProgram,
  shapesOf,
  windowedSize,
} from '../packages/core/src/index.js';
import { Rng } from '../packages/core/src/random.js';

/**
 * Backend-neutral kernel conformance: small programs run on a backend and on the float64 reference
 * backend, every output compared by relative error max|a − b| / max|b|. A backend package calls
 * `describeKernelConformance` from its own test file with a tolerance fitting its precision.
 */

/** A program plus its inputs; every output it returns is compared. */
export interface KernelCase {
  readonly name: string;
  readonly inputs: Readonly<Record<string, HostTensor>>;
  readonly program: Program;
}

export function uniformTensor(rng: Rng, shape: readonly number[], low = -1, high = 1): HostTensor {
  const value = hostTensor(shape);
  for (let i = 0; i < value.data.length; i++) value.data[i] = low + (high - low) * rng.uniform();
  return value;
}

/** Values drawn from `levels`, so that ties are certain (and exact in float32). */
export function quantizedTensor(rng: Rng, shape: readonly number[], levels: readonly number[]): HostTensor {
  const value = hostTensor(shape);
  for (let i = 0; i < value.data.length; i++) value.data[i] = levels[rng.int(levels.length)];
  return value;
}

export function convAttrs(
  strides: readonly [number, number],
  pads: readonly [number, number, number, number],
  dilations: readonly [number, number] = [1, 1],
  groups = 1,
): Conv2DAttrs {
  return { strides, pads, dilations, groups };
}

/** conv2d and both of its transposes for one geometry, with a random output gradient of the right shape. */
function convCase(
  rng: Rng,
  name: string,
  input: [number, number, number, number],
  filter: [number, number, number, number],
  attrs: Conv2DAttrs,
  withBias: boolean,
): KernelCase {
  const [n, , h, w] = input;
  const outHeight = windowedSize(h, filter[2], attrs.strides[0], attrs.pads[0], attrs.pads[2], attrs.dilations[0]);
  const outWidth = windowedSize(w, filter[3], attrs.strides[1], attrs.pads[1], attrs.pads[3], attrs.dilations[1]);
  const inputs: Record<string, HostTensor> = {
    x: uniformTensor(rng, input),
    w: uniformTensor(rng, filter),
    dy: uniformTensor(rng, [n, filter[0], outHeight, outWidth]),
  };
  if (withBias) inputs.bias = uniformTensor(rng, [filter[0]]);
  return {
    name,
    inputs,
    program: (k, { x, w: weight, dy, bias }) => ({
      conv2d: k.conv2d(x, weight, bias, attrs),
      conv2dBackpropInput: k.conv2dBackpropInput(dy, weight, [h, w], attrs),
      conv2dBackpropFilter: k.conv2dBackpropFilter(x, dy, filter, attrs),
    }),
  };
}

function avgPoolCase(rng: Rng, name: string, input: [number, number, number, number], attrs: PoolAttrs): KernelCase {
  const [n, c, h, w] = input;
  const outHeight = windowedSize(h, attrs.kernel[0], attrs.strides[0], attrs.pads[0], attrs.pads[2]);
  const outWidth = windowedSize(w, attrs.kernel[1], attrs.strides[1], attrs.pads[1], attrs.pads[3]);
  return {
    name,
    inputs: { x: uniformTensor(rng, input), dy: uniformTensor(rng, [n, c, outHeight, outWidth]) },
    program: (k, { x, dy }) => ({ avgPool: k.avgPool(x, attrs), avgPoolBackprop: k.avgPoolBackprop(dy, [h, w], attrs) }),
  };
}

function maxPoolCase(rng: Rng, name: string, x: HostTensor, attrs: PoolAttrs): KernelCase {
  const [n, c, h, w] = x.shape;
  const outHeight = windowedSize(h, attrs.kernel[0], attrs.strides[0], attrs.pads[0], attrs.pads[2]);
  const outWidth = windowedSize(w, attrs.kernel[1], attrs.strides[1], attrs.pads[1], attrs.pads[3]);
  return {
    name,
    inputs: { x, dx: uniformTensor(rng, x.shape), dy: uniformTensor(rng, [n, c, outHeight, outWidth]) },
    program: (k, { x: input, dx, dy }) => ({
      maxPool: k.maxPool(input, attrs),
      maxPoolJvp: k.maxPoolJvp(input, dx, attrs),
      maxPoolBackprop: k.maxPoolBackprop(input, dy, attrs),
    }),
  };
}

/**
 * A conv's output taken through what a head does with it: ReLU and its mask, per-channel and
 * per-pixel broadcasts, reductions over pixels and the batch, a flattening reshape, a second conv with
 * a constant filter. A backend that keeps values in a blocked layout between ops converts them here.
 */
function blockedChainCase(rng: Rng): KernelCase {
  const filter = uniformTensor(rng, [16, 16, 3, 3]);
  return {
    name: 'blocked layout through elementwise ops, broadcasts and reductions',
    inputs: {
      x: uniformTensor(rng, [2, 16, 4, 5]),
      w: uniformTensor(rng, [16, 16, 3, 3]),
      perChannel: uniformTensor(rng, [1, 16, 1, 1]),
      perPixel: uniformTensor(rng, [1, 1, 4, 5]),
      perSample: uniformTensor(rng, [2, 16, 1, 1]),
      mask: uniformTensor(rng, [2, 16, 4, 5]),
    },
    program: (k, { x, w, perChannel, perPixel, perSample, mask }) => {
      const attrs = convAttrs([1, 1], [1, 1, 1, 1]);
      const y = k.conv2d(x, w, undefined, attrs);
      const relu = k.maximum(y, k.scalar(0));
      const masked = k.mul(k.mul(relu, k.greater(y, k.scalar(0))), mask);
      const broadcast = k.add(k.mul(k.sub(masked, perChannel), perPixel), perSample);
      const second = k.conv2d(broadcast, k.constant(filter), undefined, attrs);
      return {
        relu,
        broadcast,
        pooled: k.sum(second, [2, 3], false),
        pooledKeep: k.sum(second, [2, 3], true),
        perChannelSum: k.sum(second, [0, 2, 3], false),
        rowMax: k.max(second, [3], true),
        flat: k.reshape(k.exp(k.mul(second, k.scalar(0.1))), [-1, 16 * 4 * 5]),
        spread: k.mul(k.sum(second, [2, 3], true), perPixel),
      };
    },
  };
}

/**
 * Values to and from the storage order of cached values: a conv output (which a backend may hold
 * blocked) and a stored input read back and used by a conv and an elementwise op. Shapes that are
 * stored blocked (32 and 16 channels) and row-major (8 channels; one pixel).
 */
function storageOrderCase(rng: Rng): KernelCase {
  const filter = uniformTensor(rng, [32, 32, 3, 3]);
  return {
    name: 'toStorageOrder and fromStorageOrder, blocked and row-major shapes',
    inputs: {
      x: uniformTensor(rng, [2, 32, 3, 4]),
      stored: uniformTensor(rng, [2, 32, 3, 4]),
      sixteen: uniformTensor(rng, [2, 16, 2, 3]),
      eight: uniformTensor(rng, [2, 8, 3, 4]),
      pixel: uniformTensor(rng, [2, 32, 1, 1]),
    },
    program: (k, { x, stored, sixteen, eight, pixel }) => {
      const attrs = convAttrs([1, 1], [1, 1, 1, 1]);
      const y = k.conv2d(x, k.constant(filter), undefined, attrs);
      const read = k.fromStorageOrder(stored);
      return {
        convStored: k.toStorageOrder(y),
        convStoredFlat: k.reshape(k.toStorageOrder(y), [-1, 32 * 3 * 4]),
        read,
        readThroughConv: k.conv2d(k.mul(read, y), k.constant(filter), undefined, attrs),
        sixteenStored: k.toStorageOrder(sixteen),
        eightStored: k.toStorageOrder(eight),
        eightRead: k.fromStorageOrder(eight),
        pixelStored: k.toStorageOrder(pixel),
      };
    },
  };
}

function constantCase(rng: Rng): KernelCase {
  const table = uniformTensor(rng, [2, 3]);
  return {
    name: 'constant',
    inputs: { x: uniformTensor(rng, [2, 3]) },
    // The same HostTensor twice: a backend may upload it once.
    program: (k, { x }) => ({ plus: k.add(x, k.constant(table)), times: k.mul(k.constant(table), x) }),
  };
}

/** The conformance cases, from a fixed seed so every backend sees the same numbers. */
export function kernelConformanceCases(seed = 20200426): KernelCase[] {
  const rng = new Rng(seed);
  const ties = [-1, -0.5, 0, 0.5, 1];
  return [
    {
      name: 'add, sub, mul, div and scalar with NumPy broadcasting',
      inputs: {
        a: uniformTensor(rng, [2, 3, 4, 5]),
        b: uniformTensor(rng, [3, 1, 5]),
        c: uniformTensor(rng, [5]),
        positive: uniformTensor(rng, [2, 1, 4, 1], 0.5, 2),
      },
      program: (k, { a, b, c, positive }) => ({
        add: k.add(a, b),
        subReversed: k.sub(b, a),
        mul: k.mul(a, positive),
        div: k.div(a, positive),
        divReversed: k.div(c, positive),
        addScalar: k.add(a, k.scalar(0.5)),
        scalarTimesVector: k.mul(k.scalar(-2), c),
      }),
    },
    {
      name: 'maximum, minimum, greater and less with broadcasting and ties',
      inputs: { a: quantizedTensor(rng, [2, 3, 4], ties), b: quantizedTensor(rng, [3, 1], ties) },
      program: (k, { a, b }) => ({
        maximum: k.maximum(a, b),
        minimum: k.minimum(b, a),
        greater: k.greater(a, b),
        less: k.less(a, b),
        greaterThanZero: k.greater(a, k.scalar(0)),
        lessReversed: k.less(b, a),
      }),
    },
    {
      name: 'exp, log, abs and sqrt',
      inputs: { x: uniformTensor(rng, [3, 4], -2, 2), positive: uniformTensor(rng, [3, 4], 0.1, 3) },
      program: (k, { x, positive }) => ({ exp: k.exp(x), log: k.log(positive), abs: k.abs(x), sqrt: k.sqrt(positive) }),
    },
    {
      name: 'sum and max over axes, with and without keepDims',
      inputs: { x: uniformTensor(rng, [2, 3, 4, 5]) },
      program: (k, { x }) => ({
        sumKeep: k.sum(x, [1, 3], true),
        sumDrop: k.sum(x, [1, 3], false),
        sumAll: k.sum(x, [0, 1, 2, 3], false),
        sumBatch: k.sum(x, [0], false),
        maxKeep: k.max(x, [2], true),
        maxDrop: k.max(x, [0, 2, 3], false),
      }),
    },
    {
      name: 'reshape with -1, sized from shape()',
      inputs: { x: uniformTensor(rng, [2, 3, 4, 5]) },
      program: (k, { x }) => {
        // Only non-batch sizes are read: a graph backend may report the batch as -1.
        const [, channels, height] = k.shape(x);
        return { merged: k.reshape(x, [-1, channels * height, 5]), split: k.reshape(x, [2, 3, -1]) };
      },
    },
    {
      name: 'transpose across several axes',
      inputs: { x: uniformTensor(rng, [2, 3, 4, 5]), m: uniformTensor(rng, [3, 7]) },
      program: (k, { x, m }) => ({
        toNhwc: k.transpose(x, [0, 2, 3, 1]),
        scrambled: k.transpose(x, [3, 1, 0, 2]),
        matrix: k.transpose(m, [1, 0]),
      }),
    },
    {
      name: 'pad on several axes, including the batch',
      inputs: { x: uniformTensor(rng, [2, 3, 4, 5]) },
      program: (k, { x }) => ({
        inner: k.pad(x, [0, 1, 2, 0, 0, 0, 3, 2]),
        outer: k.pad(x, [1, 0, 0, 1, 0, 2, 0, 0]),
      }),
    },
    {
      name: 'strided slice with an end past the axis',
      inputs: { x: uniformTensor(rng, [2, 5, 7, 6]) },
      program: (k, { x }) => ({
        clamped: k.slice(x, [0, 1, 0, 2], [2, 100, 7, Number.MAX_SAFE_INTEGER], [1, 2, 3, 1]),
        exact: k.slice(x, [1, 0, 2, 1], [2, 5, 6, 5], [1, 3, 2, 2]),
      }),
    },
    {
      name: 'concat along channels and width',
      inputs: {
        a: uniformTensor(rng, [2, 1, 3, 4]),
        b: uniformTensor(rng, [2, 3, 3, 4]),
        c: uniformTensor(rng, [2, 2, 3, 4]),
        d: uniformTensor(rng, [2, 1, 3, 2]),
      },
      program: (k, { a, b, c, d }) => ({ channels: k.concat([a, b, c], 1), width: k.concat([a, d], 3) }),
    },
    {
      name: 'matMul with every combination of transpose flags',
      inputs: {
        a: uniformTensor(rng, [3, 4]),
        aT: uniformTensor(rng, [4, 3]),
        b: uniformTensor(rng, [4, 5]),
        bT: uniformTensor(rng, [5, 4]),
      },
      program: (k, { a, aT, b, bT }) => ({
        plain: k.matMul(a, b, false, false),
        transposedA: k.matMul(aT, b, true, false),
        transposedB: k.matMul(a, bT, false, true),
        transposedBoth: k.matMul(aT, bT, true, true),
      }),
    },
    constantCase(rng),
    convCase(
      rng,
      'conv2d 3×3, stride 2, asymmetric pads, odd size, bias',
      [2, 3, 7, 6],
      [4, 3, 3, 3],
      convAttrs([2, 2], [0, 1, 1, 2]),
      true,
    ),
    convCase(rng, 'conv2d 3×2, dilation 2, strides [1, 2]', [1, 2, 9, 8], [3, 2, 3, 2], convAttrs([1, 2], [2, 1, 2, 0], [2, 2], 1), false),
    convCase(rng, 'conv2d groups 2 with bias', [2, 4, 6, 5], [6, 2, 3, 3], convAttrs([1, 1], [1, 1, 1, 1], [1, 1], 2), true),
    convCase(
      rng,
      'conv2d depthwise (groups = C), stride 2, bias',
      [2, 3, 7, 7],
      [3, 1, 3, 3],
      convAttrs([2, 2], [1, 1, 1, 1], [1, 1], 3),
      true,
    ),
    convCase(
      rng,
      'conv2d depthwise with channel multiplier 2',
      [1, 3, 6, 5],
      [6, 1, 3, 3],
      convAttrs([1, 1], [1, 0, 1, 2], [1, 1], 3),
      false,
    ),
    // (6 − 3) is odd, so the last row and column never reach an output: backprops must leave them 0.
    convCase(rng, 'conv2d stride 2 that does not divide the input', [1, 2, 6, 6], [2, 2, 3, 3], convAttrs([2, 2], [0, 0, 0, 0]), false),
    convCase(rng, 'conv2d 1×1, stride 2', [2, 3, 5, 5], [4, 3, 1, 1], convAttrs([2, 2], [0, 0, 0, 0]), true),
    // Channels in whole blocks of 8 and 16: backends with a blocked layout (ONNX Runtime's NCHWc) take it.
    convCase(rng, 'conv2d 3×3, 16 → 32 channels, bias', [2, 16, 6, 5], [32, 16, 3, 3], convAttrs([1, 1], [1, 1, 1, 1]), true),
    convCase(rng, 'conv2d 3×3, 16 → 16 channels, stride 2', [2, 16, 7, 7], [16, 16, 3, 3], convAttrs([2, 2], [1, 1, 1, 1]), false),
    convCase(rng, 'conv2d 1×1, 32 → 16 channels', [3, 32, 4, 4], [16, 32, 1, 1], convAttrs([1, 1], [0, 0, 0, 0]), true),
    convCase(rng, 'conv2d 3 → 16 channels (a stem)', [2, 3, 6, 6], [16, 3, 3, 3], convAttrs([1, 1], [1, 1, 1, 1]), true),
    convCase(rng, 'conv2d depthwise, 32 channels, bias', [2, 32, 5, 6], [32, 1, 3, 3], convAttrs([1, 1], [1, 1, 1, 1], [1, 1], 32), true),
    convCase(
      rng,
      'conv2d depthwise, 16 channels, asymmetric pads',
      [3, 16, 6, 5],
      [16, 1, 3, 3],
      convAttrs([1, 1], [0, 1, 2, 1], [1, 1], 16),
      false,
    ),
    blockedChainCase(rng),
    storageOrderCase(rng),
    avgPoolCase(rng, 'avgPool 3×3, stride 2, pads 1, count_include_pad', [2, 3, 7, 6], {
      kernel: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      countIncludePad: true,
    }),
    avgPoolCase(rng, 'avgPool 3×3, stride 2, pads 1, padding not counted', [2, 3, 7, 6], {
      kernel: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      countIncludePad: false,
    }),
    avgPoolCase(rng, 'avgPool 2×3, strides [1, 2], asymmetric pads', [1, 2, 5, 6], {
      kernel: [2, 3],
      strides: [1, 2],
      pads: [0, 1, 1, 0],
      countIncludePad: false,
    }),
    // All inputs negative: a backend that pads with 0 instead of −∞ returns 0 at the borders.
    maxPoolCase(rng, 'maxPool 3×3, stride 2, pads 1 over negative inputs', uniformTensor(rng, [2, 3, 7, 6], -2, -0.5), {
      kernel: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
    }),
    maxPoolCase(rng, 'maxPool 2×2, stride 1, with ties (first maximum wins)', quantizedTensor(rng, [2, 2, 5, 5], [0, 1]), {
      kernel: [2, 2],
      strides: [1, 1],
      pads: [0, 0, 0, 0],
    }),
    maxPoolCase(rng, 'maxPool 3×2, strides [2, 1], asymmetric pads, with ties', quantizedTensor(rng, [1, 3, 6, 5], ties), {
      kernel: [3, 2],
      strides: [2, 1],
      pads: [1, 0, 0, 1],
    }),
    // 18 × 17 output pixels: more than a graph backend may gather at once for a filter gradient.
    convCase(rng, 'conv2d depthwise on a larger image', [2, 4, 18, 17], [4, 1, 3, 3], convAttrs([1, 1], [1, 1, 1, 1], [1, 1], 4), true),
    ...edgeGeometryCases(rng),
  ];
}

/**
 * Geometries off the common paths: stride and dilation both above 1 (TF.js refuses them in one conv,
 * so its kernels subsample), pads wider than the kernel reaches (transposes crop instead of padding),
 * grouped and depthwise convs with strides, pools whose stride skips input rows.
 */
function edgeGeometryCases(rng: Rng): KernelCase[] {
  const pools = (name: string, input: [number, number, number, number], attrs: PoolAttrs) => [
    avgPoolCase(rng, `avgPool ${name}`, input, attrs),
    maxPoolCase(rng, `maxPool ${name}`, quantizedTensor(rng, input, [-1, -0.5, 0, 0.5, 1]), attrs),
  ];
  return [
    convCase(
      rng,
      'conv2d stride 2 and dilation 2 on both axes',
      [2, 3, 11, 10],
      [4, 3, 3, 2],
      convAttrs([2, 2], [2, 1, 0, 2], [2, 2]),
      false,
    ),
    convCase(rng, 'conv2d with pads wider than its 2×2 kernel reaches', [1, 2, 5, 4], [3, 2, 2, 2], convAttrs([1, 2], [2, 1, 4, 3]), false),
    convCase(
      rng,
      'conv2d groups 3, stride 2, dilation [1, 2]',
      [2, 6, 9, 9],
      [9, 2, 3, 3],
      convAttrs([2, 2], [1, 2, 1, 2], [1, 2], 3),
      false,
    ),
    convCase(
      rng,
      'conv2d depthwise, multiplier 3, stride 2 and dilation 2',
      [2, 2, 10, 9],
      [6, 1, 3, 3],
      convAttrs([2, 2], [2, 2, 1, 2], [2, 2], 2),
      false,
    ),
    ...pools('2×2 with stride 3 (skipped rows), pads, padding not counted', [2, 3, 8, 7], {
      kernel: [2, 2],
      strides: [3, 3],
      pads: [1, 0, 0, 1],
      countIncludePad: false,
    }),
    ...pools('3×1 with strides [1, 2] and padding counted', [1, 2, 6, 7], {
      kernel: [3, 1],
      strides: [1, 2],
      pads: [1, 0, 1, 0],
      countIncludePad: true,
    }),
    ...pools('1×1 with stride 2 (a single window offset)', [1, 2, 5, 5], { kernel: [1, 1], strides: [2, 2], pads: [0, 0, 0, 0] }),
  ];
}

/**
 * A fixed-shape test program signed with its inputs' shapes and the shapes of what it returns on the
 * float64 reference kernels: the signature every backend under test is then held to.
 */
export function signedOnReference(program: Program, inputs: Readonly<Record<string, HostTensor>>): SignedProgram {
  const runtime = referenceRuntime();
  const kernels = referenceKernels();
  const handles = Object.fromEntries(Object.entries(inputs).map(([name, value]) => [name, runtime.upload(value)]));
  const outputs = program(kernels, handles);
  return {
    program,
    inputs: shapesOf(Object.entries(inputs)),
    outputs: Object.fromEntries(Object.entries(outputs).map(([name, value]) => [name, kernels.shape(value)])),
  };
}

/** The kernels the cases' programs call, found by running them on the reference kernels with a recorder in between. */
export async function kernelsCalledBy(cases: readonly KernelCase[]): Promise<Set<KernelName>> {
  const called = new Set<KernelName>();
  const runtime = referenceRuntime();
  const kernels = referenceKernels();
  const recording = Object.fromEntries(
    KERNEL_NAMES.map((name) => [
      name,
      (...args: unknown[]) => {
        called.add(name);
        return (kernels[name] as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  ) as unknown as Kernels<ReferenceTensor>;
  for (const kernelCase of cases) {
    const handles = Object.fromEntries(Object.entries(kernelCase.inputs).map(([name, value]) => [name, runtime.upload(value)]));
    kernelCase.program(recording, handles);
  }
  return called;
}

/**
 * Runs one case on both backends, both held to the outputs the reference kernels give (so a missing
 * output or another shape fails the run); returns one line per output that differs (empty when all agree).
 */
export async function compareKernelCase(
  kernelCase: KernelCase,
  backend: Backend,
  reference: Backend,
  tolerance: number,
): Promise<string[]> {
  const program = signedOnReference(kernelCase.program, kernelCase.inputs);
  const expected = await runProgramOnce(reference, program, kernelCase.inputs, kernelCase.name);
  const actual = await runProgramOnce(backend, program, kernelCase.inputs, kernelCase.name);
  const problems: string[] = [];
  for (const [output, want] of Object.entries(expected)) {
    const got = actual[output];
    if (want.data.every((v) => v === 0)) {
      problems.push(`${output}: the reference output is all zeros, so the case tests nothing`);
    } else {
      const error = relativeError(got.data, want.data);
      if (!(error.relative <= tolerance)) {
        problems.push(
          `${output}: relative error ${error.relative.toExponential(2)} (absolute ${error.absolute.toExponential(2)}) > ${tolerance}`,
        );
      }
    }
  }
  return problems;
}

/**
 * Called inside a describe: starts the backend before its tests and disposes of it after them.
 * Returns what gives a test the started backend (it fails the test when the backend did not start).
 */
export function backendForSuite(backendName: string, makeBackend: () => Promise<Backend> | Backend): () => Backend {
  let backend: Backend | undefined;
  beforeAll(async () => {
    backend = await makeBackend();
  });
  afterAll(async () => {
    await backend?.dispose?.();
  });
  return () => {
    if (!backend) throw new Error(`backend ${backendName} did not start`);
    return backend;
  };
}

export function describeKernelConformance(backendName: string, makeBackend: () => Promise<Backend>, tolerance: number): void {
  describe(`kernel conformance of ${backendName} against the float64 reference (relative error ≤ ${tolerance})`, () => {
    const reference = createReferenceBackend();
    const started = backendForSuite(backendName, makeBackend);
    for (const kernelCase of kernelConformanceCases()) {
      it(kernelCase.name, async () => {
        expect(await compareKernelCase(kernelCase, started(), reference, tolerance)).toEqual([]);
      });
    }
  });
}
