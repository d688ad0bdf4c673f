import type { Conv2DAttrs, Pair, PoolAttrs } from '../ir/graph.js';
import type { HostTensor } from '../tensor.js';
import { compositeStorageOrder } from './storage-order.js';

/**
 * The backend contract: the kernels that gradfeat's op rules are written in. `T` is the backend's
 * tensor handle: a real tensor for eager backends (TF.js), a symbolic value for graph backends
 * (ONNX Runtime), which record the calls into a graph instead of running them.
 *
 * Conventions: NCHW, float32, row-major. Shapes may hold -1 for the batch dimension in graph mode.
 * Elementwise binary kernels broadcast like NumPy. Comparison kernels return 1 or 0 as float32.
 */
export interface Kernels<T> {
  /** Shape of a handle (batch may be -1 while a graph is being traced). */
  shape(x: T): readonly number[];
  /** A constant tensor; eager backends upload it once per HostTensor object. */
  constant(value: HostTensor): T;
  /** A 0-d constant. */
  scalar(value: number): T;

  /** a + b, broadcasting like NumPy. */
  add(a: T, b: T): T;
  /** a − b, broadcasting like NumPy. */
  sub(a: T, b: T): T;
  /** a × b, broadcasting like NumPy. */
  mul(a: T, b: T): T;
  /** a / b, broadcasting like NumPy. */
  div(a: T, b: T): T;
  /** Elementwise max(a, b), broadcasting like NumPy. */
  maximum(a: T, b: T): T;
  /** Elementwise min(a, b), broadcasting like NumPy. */
  minimum(a: T, b: T): T;
  /** 1 where a > b, else 0, broadcasting like NumPy. */
  greater(a: T, b: T): T;
  /** 1 where a < b, else 0, broadcasting like NumPy. */
  less(a: T, b: T): T;
  /** Elementwise eˣ. */
  exp(x: T): T;
  /** Elementwise natural logarithm. */
  log(x: T): T;
  /** Elementwise |x|. */
  abs(x: T): T;
  /** Elementwise √x. */
  sqrt(x: T): T;

  /** Sum over the given axes. */
  sum(x: T, axes: readonly number[], keepDims: boolean): T;
  /** Maximum over the given axes. */
  max(x: T, axes: readonly number[], keepDims: boolean): T;

  /** Target shape may contain one -1. */
  reshape(x: T, shape: readonly number[]): T;
  /** Permutes the axes. */
  transpose(x: T, perm: readonly number[]): T;
  /** Zero padding; pads = [begin per axis…, end per axis…] over all axes. */
  pad(x: T, pads: readonly number[]): T;
  /** Per-axis begin, end (exclusive) and positive step over all axes; end may be larger than the axis. */
  slice(x: T, begins: readonly number[], ends: readonly number[], steps: readonly number[]): T;
  /** Joins tensors along an axis. */
  concat(xs: readonly T[], axis: number): T;

  /** a·b for 2-D operands, optionally transposing either. */
  matMul(a: T, b: T, transposeA: boolean, transposeB: boolean): T;

  /** x [N,C,H,W] ⋆ w [O, C/groups, kh, kw] (+ bias [O]). */
  conv2d(x: T, w: T, bias: T | undefined, attrs: Conv2DAttrs): T;
  /** Transpose of conv2d in x: dy [N,O,Ho,Wo] → dx [N,C,H,W] for an input of spatial size `inputSize`. */
  conv2dBackpropInput(dy: T, w: T, inputSize: Pair, attrs: Conv2DAttrs): T;
  /** Transpose of conv2d in w: (x, dy) → dw of shape `filterShape` [O, C/groups, kh, kw]. */
  conv2dBackpropFilter(x: T, dy: T, filterShape: readonly number[], attrs: Conv2DAttrs): T;

  /** Average pooling over NCHW windows. */
  avgPool(x: T, attrs: PoolAttrs): T;
  /** Transpose of avgPool: dy → dx for an input of spatial size `inputSize`. */
  avgPoolBackprop(dy: T, inputSize: Pair, attrs: PoolAttrs): T;
  /** Max pooling over NCHW windows. */
  maxPool(x: T, attrs: PoolAttrs): T;
  /** Tangent of maxPool at x: dx read at each window's first maximum of x. */
  maxPoolJvp(x: T, dx: T, attrs: PoolAttrs): T;
  /** Transpose of maxPoolJvp: dy scattered (summed) to each window's first maximum of x. */
  maxPoolBackprop(x: T, dy: T, attrs: PoolAttrs): T;

  /**
   * x's values in the storage order of cached values (see storage-order.ts), as a tensor of x's shape:
   * what a program outputs for a later one to read. Optional: by default reshapes and a transpose.
   */
  toStorageOrder(x: T): T;
  /** The inverse of toStorageOrder: a stored value as the program reads it. Optional, like toStorageOrder. */
  fromStorageOrder(x: T): T;
}

/** The name of one kernel of `Kernels`. */
export type KernelName = keyof Kernels<unknown>;

/** Every kernel a backend can provide. */
export const KERNEL_NAMES: readonly KernelName[] = [
  'shape',
  'constant',
  'scalar',
  'add',
  'sub',
  'mul',
  'div',
  'maximum',
  'minimum',
  'greater',
  'less',
  'exp',
  'log',
  'abs',
  'sqrt',
  'sum',
  'max',
  'reshape',
  'transpose',
  'pad',
  'slice',
  'concat',
  'matMul',
  'conv2d',
  'conv2dBackpropInput',
  'conv2dBackpropFilter',
  'avgPool',
  'avgPoolBackprop',
  'maxPool',
  'maxPoolJvp',
  'maxPoolBackprop',
  'toStorageOrder',
  'fromStorageOrder',
];

/** Thrown when a program calls a kernel its backend does not provide; names both. */
export class MissingKernelError extends Error {
  constructor(
    readonly backend: string,
    readonly kernel: string,
  ) {
    super(
      `backend '${backend}' has no kernel '${kernel}': register it in the backend's kernel list (see packages/core/src/backend/kernels.ts)`,
    );
    this.name = 'MissingKernelError';
  }
}

/**
 * Completes a backend's kernel list: a kernel it does not register becomes its composite default
 * where it has one, else a function that throws a MissingKernelError naming it, so a partial plugin
 * runs every network that does not need the gap.
 */
export function completeKernels<T>(backend: string, registered: Partial<Kernels<T>>): Kernels<T> {
  const full: Record<string, unknown> = {};
  const complete = full as unknown as Kernels<T>;
  // Kernels with a default made of other kernels, used where the backend registers none.
  const composites: Partial<Record<KernelName, unknown>> = compositeStorageOrder(complete);
  for (const name of KERNEL_NAMES) {
    const kernel = registered[name];
    const composite = composites[name];
    full[name] =
      typeof kernel === 'function'
        ? kernel.bind(registered)
        : (composite ??
          (() => {
            throw new MissingKernelError(backend, name);
          }));
  }
  return complete;
}
