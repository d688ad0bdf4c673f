import { formatShape, sizeOf, stridesOf } from '@gradfeat/core/engine';

/**
 * A tensor the importer knows at import time: an initializer, a Constant node's value or the result
 * of folding a shape computation. Integer and boolean tensors are 'int', with int64 values held as JS
 * numbers (exact up to 2^53; INT64_MAX, which exporters use for "to the end", stays far above any size).
 */
export interface ConstTensor {
  readonly kind: 'float' | 'int';
  readonly shape: readonly number[];
  readonly data: Float32Array | Float64Array;
}

export function constTensor(kind: ConstTensor['kind'], shape: readonly number[], data: ArrayLike<number>): ConstTensor {
  if (data.length !== sizeOf(shape)) {
    throw new Error(`tensor of shape ${formatShape(shape)} needs ${sizeOf(shape)} values, got ${data.length}`);
  }
  return { kind, shape: [...shape], data: Float64Array.from(data) };
}

export function sameConst(a: ConstTensor, b: ConstTensor): boolean {
  return a.kind === b.kind && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]) && sameValues(a.data, b.data);
}

function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolves a possibly negative axis against a rank, or throws naming what the axis was for. */
export function normalizeAxis(axis: number, rank: number, what: string): number {
  const resolved = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(resolved) || resolved < 0 || resolved >= rank) {
    throw new Error(`${what} ${axis} is out of range for rank ${rank}`);
  }
  return resolved;
}

/** Visits every multi-index of `shape` in row-major order, with its flat position. */
function forEachIndex(shape: readonly number[], visit: (index: readonly number[], flat: number) => void): void {
  const count = sizeOf(shape);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < count; flat++) {
    visit(index, flat);
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      if (++index[axis] < shape[axis]) break;
      index[axis] = 0;
    }
  }
}

/**
 * Builds a tensor of `shape` whose element at each multi-index is read from `source` at the flat
 * offset `sourceOffset(index)`: the one loop behind transpose, slice and gather.
 */
function gatherElements(source: ConstTensor, shape: readonly number[], sourceOffset: (index: readonly number[]) => number): ConstTensor {
  const data = new Float64Array(sizeOf(shape));
  forEachIndex(shape, (index, flat) => {
    data[flat] = source.data[sourceOffset(index)];
  });
  return { kind: source.kind, shape: [...shape], data };
}

export function transposeConst(x: ConstTensor, perm: readonly number[]): ConstTensor {
  if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new Error(`perm [${perm.join(', ')}] is not a permutation of the ${x.shape.length} axes of ${formatShape(x.shape)}`);
  }
  const strides = stridesOf(x.shape);
  return gatherElements(
    x,
    perm.map((p) => x.shape[p]),
    (index) => index.reduce((offset, i, axis) => offset + i * strides[perm[axis]], 0),
  );
}

/** One axis of an ONNX Slice after clamping: the first index, the clamped end, the step and how many elements. */
export interface SliceRange {
  readonly start: number;
  readonly end: number;
  readonly step: number;
  readonly count: number;
}

/** ONNX Slice semantics for one axis: negative starts/ends count from the end, then both are clamped. */
export function resolveSliceRange(size: number, start: number, end: number, step: number): SliceRange {
  if (step === 0 || !Number.isInteger(step)) throw new Error(`slice step must be a non-zero integer, got ${step}`);
  const from = start < 0 ? start + size : start;
  const to = end < 0 ? end + size : end;
  if (step > 0) {
    const first = Math.min(Math.max(from, 0), size);
    const last = Math.min(Math.max(to, 0), size);
    return { start: first, end: last, step, count: Math.max(0, Math.ceil((last - first) / step)) };
  }
  const first = Math.min(Math.max(from, 0), size - 1);
  const last = Math.min(Math.max(to, -1), size - 1);
  return { start: first, end: last, step, count: Math.max(0, Math.ceil((first - last) / -step)) };
}

export function sliceConst(x: ConstTensor, ranges: readonly SliceRange[]): ConstTensor {
  const strides = stridesOf(x.shape);
  return gatherElements(
    x,
    ranges.map((r) => r.count),
    (index) => index.reduce((offset, i, axis) => offset + (ranges[axis].start + i * ranges[axis].step) * strides[axis], 0),
  );
}

/** The shape numpy.take gives: the indices' shape in place of `axis`. */
export function gatheredShape(x: ConstTensor, indices: ConstTensor, axis: number): number[] {
  return [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
}

/** numpy.take: picks `indices` (negative ones count from the end) along `axis`. */
export function gatherConst(x: ConstTensor, indices: ConstTensor, axis: number): ConstTensor {
  const size = x.shape[axis];
  const picks = Array.from(indices.data, (i) => {
    const resolved = i < 0 ? i + size : i;
    if (!Number.isInteger(resolved) || resolved < 0 || resolved >= size)
      throw new Error(`index ${i} is out of range for an axis of size ${size}`);
    return resolved;
  });
  const strides = stridesOf(x.shape);
  const indexRank = indices.shape.length;
  const shape = gatheredShape(x, indices, axis);
  const indexStrides = stridesOf(indices.shape);
  return gatherElements(x, shape, (index) => {
    let offset = 0;
    for (let a = 0; a < axis; a++) offset += index[a] * strides[a];
    let pick = 0;
    for (let a = 0; a < indexRank; a++) pick += index[axis + a] * indexStrides[a];
    offset += picks[pick] * strides[axis];
    for (let a = axis + 1; a < x.shape.length; a++) offset += index[a + indexRank - 1] * strides[a];
    return offset;
  });
}

/** The shape of `parts` concatenated along `axis`, or an error when they do not fit together. */
export function concatenatedShape(parts: readonly ConstTensor[], axis: number): number[] {
  const [first] = parts;
  for (const part of parts) {
    if (part.shape.length !== first.shape.length || part.shape.some((d, a) => a !== axis && d !== first.shape[a])) {
      throw new Error(`cannot concatenate shapes ${parts.map((p) => formatShape(p.shape)).join(', ')} along axis ${axis}`);
    }
  }
  const shape = [...first.shape];
  shape[axis] = parts.reduce((total, p) => total + p.shape[axis], 0);
  return shape;
}

export function concatConst(parts: readonly ConstTensor[], axis: number): ConstTensor {
  const [first] = parts;
  const shape = concatenatedShape(parts, axis);
  const outer = sizeOf(first.shape.slice(0, axis));
  const data = new Float64Array(sizeOf(shape));
  let offset = 0;
  for (let o = 0; o < outer; o++) {
    for (const part of parts) {
      const block = sizeOf(part.shape.slice(axis));
      data.set(part.data.subarray(o * block, (o + 1) * block), offset);
      offset += block;
    }
  }
  return { kind: parts.some((p) => p.kind === 'float') ? 'float' : 'int', shape, data };
}

/** NumPy broadcasting of two shapes, or an error naming both. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    return da === 1 ? db : da;
  });
}

/** Elementwise binary op with broadcasting; integer results are truncated like ONNX Runtime's. */
export function binaryConst(a: ConstTensor, b: ConstTensor, op: (x: number, y: number) => number): ConstTensor {
  const shape = broadcastShapes(a.shape, b.shape);
  const kind = a.kind === 'float' || b.kind === 'float' ? 'float' : 'int';
  const offsets = [a, b].map((t) => {
    const strides = stridesOf(t.shape);
    const shift = shape.length - t.shape.length;
    return (index: readonly number[]) =>
      t.shape.reduce((offset, d, axis) => offset + (d === 1 ? 0 : index[axis + shift] * strides[axis]), 0);
  });
  const data = new Float64Array(sizeOf(shape));
  forEachIndex(shape, (index, flat) => {
    const value = op(a.data[offsets[0](index)], b.data[offsets[1](index)]);
    data[flat] = kind === 'int' ? Math.trunc(value) : value;
  });
  return { kind, shape, data };
}

/** The values of a tensor as integers, e.g. a shape, axes or pads input. */
export function integers(x: ConstTensor, what: string): number[] {
  const values = Array.from(x.data);
  if (values.some((v) => !Number.isInteger(v))) throw new Error(`${what} must hold integers, got [${values.join(', ')}]`);
  return values;
}

/** The single value of a scalar or one-element tensor. */
export function scalarValue(x: ConstTensor, what: string): number {
  if (x.data.length !== 1) throw new Error(`${what} must be a single value, got shape ${formatShape(x.shape)}`);
  return x.data[0];
}
