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
