import type { HostTensor } from '../tensor.js';

/**
 * Random-access samples of one fixed shape (images, cached trunk outputs, features). Training reads
 * batches through this, so a source may keep everything in memory or read shards from disk.
 */
export interface SampleSource {
  readonly count: number;
  /** Shape of one sample, without the batch dimension. */
  readonly sampleShape: readonly number[];
  /** The samples at `indices`, stacked: [indices.length, ...sampleShape]. */
  read(indices: readonly number[]): Promise<HostTensor>;
}

/** A SampleSource over one tensor in memory whose first axis indexes samples. */
export function memorySource(samples: HostTensor): SampleSource {
  const sampleShape = samples.shape.slice(1);
  const stride = sampleShape.reduce((a, b) => a * b, 1);
  return {
    count: samples.shape[0],
    sampleShape,
    async read(indices) {
      const data = new Float32Array(indices.length * stride);
      indices.forEach((index, row) => {
        if (!Number.isInteger(index) || index < 0 || index >= samples.shape[0]) {
          throw new RangeError(`sample index ${index} is outside 0..${samples.shape[0] - 1}`);
        }
        data.set(samples.data.subarray(index * stride, (index + 1) * stride), row * stride);
      });
      return { shape: [indices.length, ...sampleShape], data };
    },
  };
}

/**
 * Several sources over the parts of one source's flat rows, e.g. the features and residuals stored
 * side by side in a linearisation-point cache. Reading every part with the same index array reads
 * the underlying rows once.
 */
export function splitRows(source: SampleSource, parts: readonly (readonly [string, readonly number[]])[]): Record<string, SampleSource> {
  const rowSize = source.sampleShape.reduce((a, b) => a * b, 1);
  const sizes = parts.map(([, shape]) => shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== rowSize) {
    throw new Error(
      `rows of ${rowSize} values cannot hold parts ${parts.map(([name, shape]) => `${name} [${shape.join(', ')}]`).join(', ')} (${total} values)`,
    );
  }
  let last: { indices: readonly number[]; rows: Promise<HostTensor> } | undefined;
  const rowsAt = (indices: readonly number[]) => {
    if (last?.indices !== indices) last = { indices, rows: source.read(indices) };
    return last.rows;
  };
  const result: Record<string, SampleSource> = {};
  let offset = 0;
  parts.forEach(([name, shape], part) => {
    const start = offset;
    const size = sizes[part];
    offset += size;
    result[name] = {
      count: source.count,
      sampleShape: shape,
      async read(indices) {
        const rows = await rowsAt(indices);
        const data = new Float32Array(indices.length * size);
        for (let row = 0; row < indices.length; row++)
          data.set(rows.data.subarray(row * rowSize + start, row * rowSize + start + size), row * size);
        return { shape: [indices.length, ...shape], data };
      },
    };
  });
  return result;
}

/** The rows at `rows` of a source, as a source of its own. */
export function subsetSource(source: SampleSource, rows: readonly number[]): SampleSource {
  return { count: rows.length, sampleShape: source.sampleShape, read: (indices) => source.read(indices.map((i) => rows[i])) };
}
