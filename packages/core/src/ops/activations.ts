import { defineElementwiseOp } from './rule.js';

/** ReLU: max(x, 0). */
export const relu = defineElementwiseOp({
  op: 'ReLU',
  apply: (k, x) => k.maximum(x, k.scalar(0)),
  derivative: (k, { input }) => k.greater(input, k.scalar(0)),
});

/** ReLU6: min(max(x, 0), 6). */
export const relu6 = defineElementwiseOp({
  op: 'ReLU6',
  apply: (k, x) => k.minimum(k.maximum(x, k.scalar(0)), k.scalar(6)),
  derivative: (k, { input }) => k.mul(k.greater(input, k.scalar(0)), k.less(input, k.scalar(6))),
});

/** LeakyReLU: x for x > 0, αx otherwise. */
export const leakyRelu = defineElementwiseOp({
  op: 'LeakyReLU',
  // max(x, αx) is x for x > 0 and αx otherwise, for 0 ≤ α ≤ 1.
  apply: (k, x, { alpha }) => k.maximum(x, k.mul(x, k.scalar(alpha))),
  derivative: (k, { input }, { alpha }) => k.add(k.mul(k.greater(input, k.scalar(0)), k.scalar(1 - alpha)), k.scalar(alpha)),
});
