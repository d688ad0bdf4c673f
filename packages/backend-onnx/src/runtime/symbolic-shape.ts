import { BATCH, formatSignatureShape, sizeOf } from '@gradfeat/core/engine';

/**
 * Static shapes of traced values. The one unknown is the batch size: -1 (core's BATCH) marks the
 * axis that holds it, wherever transposes move it, and it is shown as N.
 */
export const describeShape = formatSignatureShape;

/** NumPy broadcasting; N only meets N or 1, since any other size would pin the batch size. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const result: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da === db || db === 1) result.push(da);
    else if (da === 1) result.push(db);
    else throw new Error(`shapes ${describeShape(a)} and ${describeShape(b)} do not broadcast`);
  }
  return result;
}

/**
 * Resolves a reshape target's -1. A value that carries the batch must keep it as one whole axis
 * (the -1 of the target), because a multiple of an unknown size has no static shape.
 */
export function resolveReshape(from: readonly number[], to: readonly number[]): number[] {
  const free = to.filter((d) => d === -1).length;
  if (free > 1 || to.some((d) => d === 0 || d < -1 || !Number.isInteger(d))) {
    throw new Error(`reshape target [${to.join(', ')}] must hold positive sizes and at most one -1`);
  }
  const carriesBatch = from.includes(BATCH);
  const staticSize = sizeOf(from.filter((d) => d !== BATCH));
  const known = sizeOf(to.filter((d) => d !== -1));
  if (carriesBatch) {
    if (free === 0 || known !== staticSize) {
      throw new Error(
        `cannot reshape ${describeShape(from)} to [${to.join(', ')}]: the batch axis N must stay whole as the target's -1, with the other ${staticSize} values per sample kept`,
      );
    }
    return [...to];
  }
  if (free === 0 ? known !== staticSize : staticSize % known !== 0) {
    throw new Error(`cannot reshape ${describeShape(from)} (${staticSize} values) to [${to.join(', ')}]`);
  }
  return to.map((d) => (d === -1 ? staticSize / known : d));
}

/** Validates axes (negative ones count from the end) and returns them sorted and unique. */
export function normalizeAxes(axes: readonly number[], rank: number, what: string): number[] {
  const resolved = axes.map((axis) => {
    if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`${what}: axis ${axis} is out of range for rank ${rank}`);
    return axis < 0 ? axis + rank : axis;
  });
  return [...new Set(resolved)].sort((x, y) => x - y);
}
