const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** IEEE 754 binary16 bits of `value`, rounded to nearest with ties to even; overflow gives ±Infinity. */
export function toFloat16Bits(value: number): number {
  scratch[0] = value;
  const bits = scratchBits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent > 0) {
    // Normal: keep 10 of the 23 mantissa bits; a carry out of the mantissa correctly bumps the exponent (up to Infinity).
    const half = (halfExponent << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half);
  }
  // Subnormal (or zero): the value in units of 2^-24 is the full significand shifted right.
  const shift = 14 - halfExponent;
  if (shift > 24) return sign;
  const significand = mantissa | 0x800000;
  const half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return sign | (rest > halfway || (rest === halfway && (half & 1) === 1) ? half + 1 : half);
}

/** One IEEE half-precision value from its 16 bits. */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** float32 → float16 bits, rounding to nearest even. */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const half = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = toFloat16Bits(values[i]);
  return half;
}

let decodeTable: Float32Array | undefined;

/** float16 bits → float32 values, into `values` when given (of the same length). */
export function float16ToFloat32(half: Uint16Array, values: Float32Array = new Float32Array(half.length)): Float32Array {
  decodeTable ??= Float32Array.from({ length: 0x10000 }, (_, bits) => fromFloat16Bits(bits));
  for (let i = 0; i < half.length; i++) values[i] = decodeTable[half[i]];
  return values;
}
