import { describe, expect, it } from 'vitest';
import { decodeRows, encodeRows, packTensors, unpackTensors } from '../src/index.js';

describe('what jobs carry', () => {
  it('tensors round-trip exactly through a blob, float32 and float64, whatever offset the bytes arrive at', () => {
    const tensors = new Map([
      ['w1.weight', { shape: [2, 3], data: Float32Array.of(1.5, -2, 3e-8, 4, 5, 6) }],
      ['grad', { shape: [3], data: Float64Array.of(0.1, 1e-300, -7) }],
      ['empty', { shape: [0], data: new Float32Array(0) }],
    ]);
    const packed = packTensors(tensors, { version: 7 });
    // As a Redis client hands it over: a slice at an odd offset of a larger buffer.
    const shifted = Buffer.concat([Buffer.from([9]), packed]).subarray(1);
    for (const bytes of [packed, shifted]) {
      const { meta, tensors: back } = unpackTensors(bytes);
      expect(meta).toEqual({ version: 7 });
      expect([...back.keys()]).toEqual(['w1.weight', 'grad', 'empty']);
      expect(back.get('w1.weight')).toEqual(tensors.get('w1.weight'));
      expect(back.get('grad')?.data).toBeInstanceOf(Float64Array);
      expect([...(back.get('grad')?.data ?? [])]).toEqual([0.1, 1e-300, -7]);
    }
  });

  it('rows travel as a range when consecutive, else as a list', () => {
    expect(encodeRows([4, 5, 6, 7])).toEqual({ start: 4, end: 8 });
    expect(encodeRows([4, 6, 5])).toEqual([4, 6, 5]);
    expect(decodeRows({ start: 4, end: 8 })).toEqual([4, 5, 6, 7]);
    expect(decodeRows([4, 6, 5])).toEqual([4, 6, 5]);
  });
});
