/** A dense float32 tensor in host memory, row-major (C order). Layout of images is NCHW throughout gradfeat. */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** The number of values of a tensor of this shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A float32 host tensor of `shape`, zeros or the given values. */
export function hostTensor(shape: readonly number[], data?: Float32Array | readonly number[]): HostTensor {
  const n = sizeOf(shape);
  const buffer = data === undefined ? new Float32Array(n) : Float32Array.from(data);
  if (buffer.length !== n) {
    throw new Error(`tensor data has ${buffer.length} values but shape [${shape.join(', ')}] needs ${n}`);
  }
  return { shape: [...shape], data: buffer };
}

/** Row-major strides of a shape, in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    strides[axis] = stride;
    stride *= shape[axis];
  }
  return strides;
}

/**
 * For every index of `shape` in row-major order, base + Σ index[d]·strides[d]. Broadcasting,
 * reductions, transpose, slice, pad and concat are all this one walk with different strides.
 */
export function stridedOffsets(shape: readonly number[], strides: readonly number[], base = 0): Int32Array {
  const count = sizeOf(shape);
  const offsets = new Int32Array(count);
  const index = new Array<number>(shape.length).fill(0);
  let offset = base;
  for (let i = 0; i < count; i++) {
    offsets[i] = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      offset += strides[d];
      if (index[d] < shape[d]) break;
      offset -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
  return offsets;
}

/** [labels.length, classes] with a 1 at each row's label. */
export function oneHot(labels: ArrayLike<number>, classes: number): HostTensor {
  const data = new Float32Array(labels.length * classes);
  for (let row = 0; row < labels.length; row++) data[row * classes + labels[row]] = 1;
  return { shape: [labels.length, classes], data };
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A shape as text, e.g. '[N, 3, 32, 32]'. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** max |a − b| / max |b|: the relative error used for every reference comparison in gradfeat. */
export function relativeError(ours: ArrayLike<number>, reference: ArrayLike<number>): { absolute: number; relative: number } {
  if (ours.length !== reference.length) {
    throw new Error(`cannot compare tensors of ${ours.length} and ${reference.length} values`);
  }
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ours.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(ours[i] - reference[i]));
    maxRef = Math.max(maxRef, Math.abs(reference[i]));
  }
  return { absolute: maxDiff, relative: maxRef === 0 ? maxDiff : maxDiff / maxRef };
}
