import { formatShape, type HostTensor, sizeOf, stridedOffsets, stridesOf } from '../tensor.js';
import { type Backend, type EagerRuntime, eagerBackend } from './backend.js';
import type { Kernels } from './kernels.js';
import {
  avgPool,
  avgPoolBackprop,
  conv2d,
  conv2dBackpropFilter,
  conv2dBackpropInput,
  maxPool,
  maxPoolBackprop,
  maxPoolJvp,
} from './reference-windows.js';
import type { BackendPlugin } from './registry.js';
import { withStorageOrder } from './storage-order.js';

/**
 * The reference backend: every kernel of the contract in plain TypeScript loops. It is slow but
 * always available, it is what other backends are checked against, and it is the example to copy
 * when writing a plugin. Values are float64 so that finite-difference checks of the op rules can be
 * tight; they are rounded to float32 only when a program's outputs are downloaded.
 */
export interface ReferenceTensor {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

/** The float64 reference backend: naive loops, slow, for checks and as the last fallback. */
export function createReferenceBackend(): Backend {
  return eagerBackend(referenceRuntime());
}

/** The reference backend's plugin: name 'js', priority 0. */
export const referenceBackendPlugin: BackendPlugin = {
  name: 'js',
  priority: 0,
  create: async () => createReferenceBackend(),
};

/** The runtime behind the reference backend; wrap it with eagerBackend() to swap or add kernels. */
export function referenceRuntime(): EagerRuntime<ReferenceTensor> {
  return {
    name: 'js-reference',
    kernels: referenceKernels(),
    upload: toReference,
    download: async (x) => ({ shape: [...x.shape], data: Float32Array.from(x.data) }),
    // Tensors are plain arrays: the garbage collector frees intermediates, so there is nothing to track.
    tidy: (fn) => fn(),
    dispose() {},
  };
}

function toReference(value: HostTensor): ReferenceTensor {
  return { shape: [...value.shape], data: Float64Array.from(value.data) };
}

/** The kernels themselves, callable directly on ReferenceTensors; each call gets its own constant cache. */
export function referenceKernels(): Kernels<ReferenceTensor> {
  const constants = new WeakMap<HostTensor, ReferenceTensor>();
  return withStorageOrder({
    shape: (x) => x.shape,
    constant(value) {
      let uploaded = constants.get(value);
      if (!uploaded) {
        uploaded = toReference(value);
        constants.set(value, uploaded);
      }
      return uploaded;
    },
    scalar: (value) => ({ shape: [], data: Float64Array.of(value) }),

    add: (a, b) => binary('add', a, b, (x, y) => x + y),
    sub: (a, b) => binary('sub', a, b, (x, y) => x - y),
    mul: (a, b) => binary('mul', a, b, (x, y) => x * y),
    div: (a, b) => binary('div', a, b, (x, y) => x / y),
    maximum: (a, b) => binary('maximum', a, b, Math.max),
    minimum: (a, b) => binary('minimum', a, b, Math.min),
    greater: (a, b) => binary('greater', a, b, (x, y) => (x > y ? 1 : 0)),
    less: (a, b) => binary('less', a, b, (x, y) => (x < y ? 1 : 0)),
    exp: (x) => unary(x, Math.exp),
    log: (x) => unary(x, Math.log),
    abs: (x) => unary(x, Math.abs),
    sqrt: (x) => unary(x, Math.sqrt),

    sum: (x, axes, keepDims) => reduce('sum', x, axes, keepDims, 0, (total, v) => total + v),
    max: (x, axes, keepDims) => reduce('max', x, axes, keepDims, Number.NEGATIVE_INFINITY, Math.max),

    reshape,
    transpose,
    pad,
    slice,
    concat,
    matMul,

    conv2d,
    conv2dBackpropInput,
    conv2dBackpropFilter,
    avgPool,
    avgPoolBackprop,
    maxPool,
    maxPoolJvp,
    maxPoolBackprop,
  });
}

/** NumPy broadcasting of two shapes, aligned on their last axes. */
function broadcastShape(kernel: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const shape = new Array<number>(rank);
  for (let d = 0; d < rank; d++) {
    const da = a[d - rank + a.length] ?? 1;
    const db = b[d - rank + b.length] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${kernel}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast (axis ${d}: ${da} vs ${db})`);
    }
    shape[d] = da === 1 ? db : da;
  }
  return shape;
}

/** Strides that read a tensor of `shape` broadcast to `target`: 0 along axes it is repeated on. */
function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  const own = stridesOf(shape);
  const lead = target.length - shape.length;
  return target.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : own[d - lead]));
}

function binary(kernel: string, a: ReferenceTensor, b: ReferenceTensor, op: (x: number, y: number) => number): ReferenceTensor {
  const shape = broadcastShape(kernel, a.shape, b.shape);
  const fromA = stridedOffsets(shape, broadcastStrides(a.shape, shape));
  const fromB = stridedOffsets(shape, broadcastStrides(b.shape, shape));
  const data = new Float64Array(fromA.length);
  for (let i = 0; i < data.length; i++) data[i] = op(a.data[fromA[i]], b.data[fromB[i]]);
  return { shape, data };
}

function unary(x: ReferenceTensor, op: (v: number) => number): ReferenceTensor {
  return { shape: x.shape, data: x.data.map(op) };
}

function checkAxes(kernel: string, x: ReferenceTensor, axes: readonly number[]): void {
  for (const axis of axes) {
    if (!Number.isInteger(axis) || axis < 0 || axis >= x.shape.length) {
      throw new Error(`${kernel}: axis ${axis} is not an axis of a tensor of shape ${formatShape(x.shape)}`);
    }
  }
}

function reduce(
  kernel: string,
  x: ReferenceTensor,
  axes: readonly number[],
  keepDims: boolean,
  initial: number,
  combine: (accumulated: number, value: number) => number,
): ReferenceTensor {
  checkAxes(kernel, x, axes);
  const keptShape = x.shape.map((d, axis) => (axes.includes(axis) ? 1 : d));
  const data = new Float64Array(sizeOf(keptShape)).fill(initial);
  const target = stridedOffsets(x.shape, broadcastStrides(keptShape, x.shape));
  for (let i = 0; i < x.data.length; i++) data[target[i]] = combine(data[target[i]], x.data[i]);
  return { shape: keepDims ? keptShape : x.shape.filter((_, axis) => !axes.includes(axis)), data };
}

function reshape(x: ReferenceTensor, shape: readonly number[]): ReferenceTensor {
  const free = shape.filter((d) => d === -1).length;
  const known = sizeOf(shape.filter((d) => d !== -1));
  const resolved = shape.map((d) => (d === -1 ? x.data.length / known : d));
  if (free > 1 || sizeOf(resolved) !== x.data.length || !resolved.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`reshape: cannot reshape ${formatShape(x.shape)} (${x.data.length} values) to ${formatShape(shape)}`);
  }
  return { shape: resolved, data: x.data };
}

function transpose(x: ReferenceTensor, perm: readonly number[]): ReferenceTensor {
  const isPermutation = perm.length === x.shape.length && [...perm].sort((p, q) => p - q).every((p, i) => p === i);
  if (!isPermutation) throw new Error(`transpose: [${perm.join(', ')}] is not a permutation of the axes of ${formatShape(x.shape)}`);
  const strides = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  const source = stridedOffsets(
    shape,
    perm.map((p) => strides[p]),
  );
  return { shape, data: gather(x, source) };
}

function gather(x: ReferenceTensor, source: Int32Array): Float64Array {
  const data = new Float64Array(source.length);
  for (let i = 0; i < data.length; i++) data[i] = x.data[source[i]];
  return data;
}

/** Writes all of `x` into `out` at the given offsets. */
function scatterInto(out: Float64Array, x: ReferenceTensor, target: Int32Array): void {
  for (let i = 0; i < target.length; i++) out[target[i]] = x.data[i];
}

function pad(x: ReferenceTensor, pads: readonly number[]): ReferenceTensor {
  const rank = x.shape.length;
  if (pads.length !== 2 * rank || pads.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new Error(
      `pad: pads must be ${2 * rank} non-negative integers (begins then ends) for ${formatShape(x.shape)}, got [${pads.join(', ')}]`,
    );
  }
  const shape = x.shape.map((d, axis) => d + pads[axis] + pads[axis + rank]);
  const strides = stridesOf(shape);
  const data = new Float64Array(sizeOf(shape));
  const origin = x.shape.reduce((offset, _, axis) => offset + pads[axis] * strides[axis], 0);
  scatterInto(data, x, stridedOffsets(x.shape, strides, origin));
  return { shape, data };
}

function slice(x: ReferenceTensor, begins: readonly number[], ends: readonly number[], steps: readonly number[]): ReferenceTensor {
  const rank = x.shape.length;
  if (begins.length !== rank || ends.length !== rank || steps.length !== rank) {
    throw new Error(`slice: begins, ends and steps need ${rank} entries each for ${formatShape(x.shape)}`);
  }
  const shape = x.shape.map((d, axis) => {
    if (begins[axis] < 0 || begins[axis] > d || steps[axis] < 1) {
      throw new Error(`slice: axis ${axis} of size ${d} cannot be sliced from ${begins[axis]} by step ${steps[axis]}`);
    }
    return Math.max(0, Math.ceil((Math.min(ends[axis], d) - begins[axis]) / steps[axis]));
  });
  const strides = stridesOf(x.shape);
  const origin = begins.reduce((offset, begin, axis) => offset + begin * strides[axis], 0);
  const source = stridedOffsets(
    shape,
    strides.map((s, axis) => s * steps[axis]),
    origin,
  );
  return { shape, data: gather(x, source) };
}

function concat(xs: readonly ReferenceTensor[], axis: number): ReferenceTensor {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  const first = xs[0].shape;
  checkAxes('concat', xs[0], [axis]);
  for (const x of xs) {
    if (x.shape.length !== first.length || x.shape.some((d, i) => i !== axis && d !== first[i])) {
      throw new Error(`concat: shapes ${xs.map((t) => formatShape(t.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  const shape = [...first];
  shape[axis] = xs.reduce((total, x) => total + x.shape[axis], 0);
  const strides = stridesOf(shape);
  const data = new Float64Array(sizeOf(shape));
  let position = 0;
  for (const x of xs) {
    scatterInto(data, x, stridedOffsets(x.shape, strides, position * strides[axis]));
    position += x.shape[axis];
  }
  return { shape, data };
}

function matMul(a: ReferenceTensor, b: ReferenceTensor, transposeA: boolean, transposeB: boolean): ReferenceTensor {
  if (a.shape.length !== 2 || b.shape.length !== 2) {
    throw new Error(`matMul: operands must be 2-D, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  }
  const [rows, inner] = transposeA ? [a.shape[1], a.shape[0]] : a.shape;
  const [innerB, cols] = transposeB ? [b.shape[1], b.shape[0]] : b.shape;
  if (inner !== innerB) {
    throw new Error(
      `matMul: ${formatShape(a.shape)}${transposeA ? 'ᵀ' : ''} · ${formatShape(b.shape)}${transposeB ? 'ᵀ' : ''} has inner sizes ${inner} and ${innerB}`,
    );
  }
  // Element (i, k) of op(A) sits at i·aRow + k·aInner; likewise (k, j) of op(B).
  const [aRow, aInner] = transposeA ? [1, rows] : [inner, 1];
  const [bInner, bCol] = transposeB ? [1, inner] : [cols, 1];
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < inner; k++) {
      const aik = a.data[i * aRow + k * aInner];
      for (let j = 0; j < cols; j++) data[i * cols + j] += aik * b.data[k * bInner + j * bCol];
    }
  }
  return { shape: [rows, cols], data };
}
