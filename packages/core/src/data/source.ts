import type { HostTensor } from '../tensor.js';

/**
 * Random-access samples of one fixed shape (images, cached trunk outputs, features). Training reads
 * batches through this, so a source may keep everything in memory or read shards from disk.
 */
export interface SampleSource {
  readonly count: number;
  /** Shape of one sample, without the batch dimension. */
  readonly sampleShape: readonly number[];
  /**
   * The samples at `indices`, stacked: [indices.length, ...sampleShape]. A source may write them into
   * `into` (exactly indices.length × sample size values) and return it as the data instead of a new
   * array: training passes the same buffer every step, since a fresh allocation of megabytes costs
   * page faults on every batch. The previous result's data is then overwritten.
   */
  read(indices: readonly number[], into?: Float32Array): Promise<HostTensor>;
}

/** `into` when it has exactly `length` values, else a new array of that length. */
export function batchBuffer(length: number, into?: Float32Array): Float32Array {
  return into?.length === length ? into : new Float32Array(length);
}

/** A SampleSource over one tensor in memory whose first axis indexes samples. */
export function memorySource(samples: HostTensor): SampleSource {
  const sampleShape = samples.shape.slice(1);
  const stride = sampleShape.reduce((a, b) => a * b, 1);
  return {
    count: samples.shape[0],
    sampleShape,
    async read(indices, into) {
      const data = batchBuffer(indices.length * stride, into);
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
  // The parts of one batch are read one after another with the same index array; the next batch may
  // reuse the rows' buffer.
  let last: { indices: readonly number[]; rows: Promise<HostTensor> } | undefined;
  let rowsBuffer: Float32Array | undefined;
  const rowsAt = (indices: readonly number[]) => {
    if (last?.indices !== indices) {
      rowsBuffer = batchBuffer(indices.length * rowSize, rowsBuffer);
      last = { indices, rows: source.read(indices, rowsBuffer) };
    }
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
      async read(indices, into) {
        const rows = await rowsAt(indices);
        const data = batchBuffer(indices.length * size, into);
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
  return {
    count: rows.length,
    sampleShape: source.sampleShape,
    read: (indices, into) =>
      source.read(
        indices.map((i) => rows[i]),
        into,
      ),
  };
}
