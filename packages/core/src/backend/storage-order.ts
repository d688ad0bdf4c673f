import type { Kernels } from './kernels.js';

/**
 * The order in which programs store per-sample values for later programs to read (the linearised
 * models' cached point): a [N, C, H, W] value whose C is a multiple of STORAGE_BLOCK is stored
 * channel-blocked, as [N, C/16, H, W, 16] with 16 channels innermost; every other shape row-major.
 * That is ONNX Runtime's NCHWc layout on AVX-512 CPUs, whose convolutions then read a cached residual
 * without reordering it on every step. One order for every backend and machine, so that a cache
 * written by one is read by any other.
 */
export const STORAGE_BLOCK = 16;

/** The storage order's name, part of the keys of caches that hold values in it. */
export const STORAGE_ORDER = `NCHW${STORAGE_BLOCK}c`;

/** Whether a value of this shape is stored blocked (else row-major, which is the same memory for 1×1 images). */
export function storedBlocked(shape: readonly number[]): boolean {
  return shape.length === 4 && shape[1] > 0 && shape[1] % STORAGE_BLOCK === 0 && shape[2] * shape[3] > 1;
}

/** toStorageOrder from reshapes and a transpose, for backends without a faster kernel. */
export function toStorageOrderComposite<T>(k: Kernels<T>, x: T): T {
  return regroupChannels(k, x, (n, c, h, w) => [n, c / STORAGE_BLOCK, STORAGE_BLOCK, h, w], [0, 1, 3, 4, 2]);
}

/** fromStorageOrder from reshapes and a transpose, for backends without a faster kernel. */
export function fromStorageOrderComposite<T>(k: Kernels<T>, x: T): T {
  return regroupChannels(k, x, (n, c, h, w) => [n, c / STORAGE_BLOCK, h, w, STORAGE_BLOCK], [0, 1, 4, 2, 3]);
}

/** x viewed as `view(n, c, h, w)`, permuted by `perm`, read back as [n, c, h, w]; x itself where its shape is stored row-major. */
function regroupChannels<T>(
  k: Kernels<T>,
  x: T,
  view: (n: number, c: number, h: number, w: number) => number[],
  perm: readonly number[],
): T {
  const shape = k.shape(x);
  if (!storedBlocked(shape)) return x;
  const [n, c, h, w] = shape;
  return k.reshape(k.transpose(k.reshape(x, view(n, c, h, w)), perm), shape);
}

/** The kernels that have a composite default (completeKernels fills them in where a backend has none). */
export type StorageOrderKernels = 'toStorageOrder' | 'fromStorageOrder';

/** The storage-order kernels composed of `k`'s reshape and transpose. */
export function compositeStorageOrder<T>(k: Kernels<T>): Pick<Kernels<T>, StorageOrderKernels> {
  return {
    toStorageOrder: (x) => toStorageOrderComposite(k, x),
    fromStorageOrder: (x) => fromStorageOrderComposite(k, x),
  };
}

/** A full kernel set from one without the storage-order kernels: those composed of its reshape and transpose. */
export function withStorageOrder<T>(kernels: Omit<Kernels<T>, StorageOrderKernels>): Kernels<T> {
  const complete = { ...kernels } as Kernels<T>;
  return Object.assign(complete, compositeStorageOrder(complete));
}
