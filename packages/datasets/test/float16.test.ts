import { describe, expect, it } from 'vitest';
import { float16ToFloat32, float32ToFloat16, fromFloat16Bits, toFloat16Bits } from '../src/float16.js';
import { seededRandom } from '../src/random.js';

/**
 * Reference rounding by search, independent of the bit manipulation: the nearest of all finite
 * non-negative halves (ties to the even bit pattern), or Infinity past the halfway point above 65504.
 */
const positiveHalves = Array.from({ length: 0x7c00 }, (_, bits) => fromFloat16Bits(bits));
function referenceBits(value: number): number {
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  if (magnitude >= 65520) return sign | 0x7c00;
  let low = 0;
  let high = positiveHalves.length - 1;
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (positiveHalves[middle] <= magnitude) low = middle;
    else high = middle;
  }
  const below = magnitude - positiveHalves[low];
  const above = positiveHalves[high] - magnitude;
  const nearest = below < above ? low : above < below ? high : low % 2 === 0 ? low : high;
  return sign | nearest;
}

describe('float16 conversion', () => {
  it('rounds known values to nearest, ties to even', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000],
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [1 + 2 ** -11 + 2 ** -20, 0x3c01],
      [-0, 0x8000],
      [Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
      [1e-10, 0],
    ];
    for (const [value, bits] of cases) expect([value, toFloat16Bits(value)]).toEqual([value, bits]);
    const nan = toFloat16Bits(Number.NaN);
    expect((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0).toBe(true);
    expect(fromFloat16Bits(0x7e00)).toBeNaN();
    expect(fromFloat16Bits(0x3555)).toBeCloseTo(0.333251953125, 12);
  });

  it('round-trips every one of the 65,536 half values exactly', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromFloat16Bits(bits);
      if (Number.isNaN(value)) continue;
      if (toFloat16Bits(value) !== bits) throw new Error(`0x${bits.toString(16)} → ${value} → 0x${toFloat16Bits(value).toString(16)}`);
    }
    const all = Uint16Array.from({ length: 0x10000 }, (_, bits) => bits).filter((bits) => !Number.isNaN(fromFloat16Bits(bits)));
    expect(float32ToFloat16(float16ToFloat32(all))).toEqual(all);
  });

  it('agrees with the search-based reference on 200,000 random float32 values across the whole range', () => {
    const random = seededRandom(42);
    const values = new Float32Array(200_000);
    for (let i = 0; i < values.length; i++) {
      // Log-uniform magnitudes from 2^-30 (below the subnormals) to 2^17 (beyond the largest half), random sign.
      values[i] = (random() < 0.5 ? -1 : 1) * 2 ** (-30 + 47 * random());
    }
    // Exact ties and midpoints between neighbouring halves, where rounding matters most.
    for (let i = 0; i < 2000; i++) {
      const bits = Math.floor(random() * 0x7bff);
      values[i] = (fromFloat16Bits(bits) + fromFloat16Bits(bits + 1)) / 2;
    }
    const converted = float32ToFloat16(values);
    for (let i = 0; i < values.length; i++) {
      if (converted[i] !== referenceBits(values[i]))
        throw new Error(`${values[i]}: 0x${converted[i].toString(16)} vs reference 0x${referenceBits(values[i]).toString(16)}`);
    }
    // Relative error of the normal range is at most 2^-11.
    const back = float16ToFloat32(converted);
    let worst = 0;
    for (let i = 2000; i < values.length; i++) {
      const magnitude = Math.abs(values[i]);
      if (magnitude >= 2 ** -14 && magnitude < 65504) worst = Math.max(worst, Math.abs(back[i] - values[i]) / magnitude);
    }
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(2 ** -11);
  });
});
