import type { HostTensor } from './tensor.js';

/**
 * Seeded random numbers (sfc32), so that the same seed gives the same numbers on every machine and
 * backend. State is four 32-bit words and can be saved in a checkpoint.
 */
export class Rng {
  private state: Uint32Array;

  constructor(seed: number | readonly number[]) {
    this.state = new Uint32Array(typeof seed === 'number' ? [0x9e3779b9, seed >>> 0, (seed / 2 ** 32) >>> 0, 0x85ebca6b] : seed);
    if (typeof seed === 'number') for (let i = 0; i < 16; i++) this.nextUint32();
  }

  /** The generator's state, to resume exactly where it stopped. */
  snapshot(): number[] {
    return [...this.state];
  }

  /** The next 32 random bits. */
  nextUint32(): number {
    const s = this.state;
    const t = (((s[0] + s[1]) >>> 0) + s[3]) >>> 0;
    s[3] = (s[3] + 1) >>> 0;
    s[0] = s[1] ^ (s[1] >>> 9);
    s[1] = (s[2] + (s[2] << 3)) >>> 0;
    s[2] = ((s[2] << 21) | (s[2] >>> 11)) >>> 0;
    s[2] = (s[2] + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** A new random permutation of 0..n−1 (Fisher–Yates). */
  permutation(n: number): number[] {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }
}

/** A tensor of independent normal draws × scale (random weights and inputs for tests and benchmarks). */
export function normalTensor(rng: Rng, shape: readonly number[], scale = 1): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal() * scale;
  return { shape: [...shape], data };
}
