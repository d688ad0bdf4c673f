import type { Pair, PoolAttrs } from '@gradfeat/core/engine';
import * as tf from '@tensorflow/tfjs-core';
import { interleaveZeros, mutablePair, padOrCrop, spreadForTranspose, toNCHW, toNHWC } from './spatial.js';

/**
 * Pools with the IR's explicit padding: the input is padded here (zeros for average, −∞ for max)
 * and TF.js pools it 'valid'. The max-pool tangent and its transpose are built from strided slices,
 * so they follow gradfeat's first-maximum rule on every runtime, including wasm.
 */

function hasPadding(attrs: PoolAttrs): boolean {
  return attrs.pads.some((p) => p !== 0);
}

/**
 * When padded zeros do not count, the share of each window that lies inside the input, [1, Ho, Wo, 1];
 * the average is then sum / (window · share). Undefined when every window divides by its full size.
 */
function insideShare(inputSize: Pair, attrs: PoolAttrs): tf.Tensor4D | undefined {
  if (attrs.countIncludePad === true || !hasPadding(attrs)) return undefined;
  const inside = padOrCrop(tf.ones([1, inputSize[0], inputSize[1], 1]), attrs.pads);
  return tf.avgPool(inside, mutablePair(attrs.kernel), mutablePair(attrs.strides), 'valid');
}

export function avgPool(x: tf.Tensor, attrs: PoolAttrs): tf.Tensor {
  const xn = toNHWC(x);
  const pooled = tf.avgPool(padOrCrop(xn, attrs.pads), mutablePair(attrs.kernel), mutablePair(attrs.strides), 'valid');
  const share = insideShare([xn.shape[1], xn.shape[2]], attrs);
  return toNCHW(share ? tf.div(pooled, share) : pooled);
}

/** Each window hands dy / its divisor to every input it covers: an average pool of the spread dy. */
export function avgPoolBackprop(dy: tf.Tensor, inputSize: Pair, attrs: PoolAttrs): tf.Tensor {
  const share = insideShare(inputSize, attrs);
  const dyn = toNHWC(dy);
  const spread = spreadForTranspose(share ? tf.div(dyn, share) : dyn, inputSize, attrs.kernel, attrs.strides, attrs.pads);
  // The window is symmetric, so the transpose needs no flip.
  return toNCHW(tf.avgPool(spread, mutablePair(attrs.kernel), [1, 1], 'valid'));
}

export function maxPool(x: tf.Tensor, attrs: PoolAttrs): tf.Tensor {
  return toNCHW(
    tf.maxPool(padOrCrop(toNHWC(x), attrs.pads, Number.NEGATIVE_INFINITY), mutablePair(attrs.kernel), mutablePair(attrs.strides), 'valid'),
  );
}

/** Window offsets (a, b) in row-major order: the order that decides which of tied maxima is first. */
function windowOffsets([kh, kw]: Pair): Pair[] {
  const offsets: Pair[] = [];
  for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) offsets.push([a, b]);
  return offsets;
}

/** The input element at offset (a, b) of every window: [N, Ho, Wo, C] per offset. */
function windowView(padded: tf.Tensor4D, [a, b]: Pair, outputSize: Pair, [sh, sw]: Pair): tf.Tensor4D {
  const [n, , , c] = padded.shape;
  const end = [n, a + (outputSize[0] - 1) * sh + 1, b + (outputSize[1] - 1) * sw + 1, c];
  return tf.stridedSlice(padded, [0, a, b, 0], end, [1, sh, sw, 1]) as tf.Tensor4D;
}

/**
 * 1 at each window's first maximum of x (row-major within the window), else 0: [K, N, Ho, Wo, C] over
 * the K window offsets. A later offset is dropped when an earlier one already holds the maximum.
 */
function firstMaxMask(x: tf.Tensor, attrs: PoolAttrs): { mask: tf.Tensor; outputSize: Pair } {
  const padded = padOrCrop(toNHWC(x), attrs.pads, Number.NEGATIVE_INFINITY);
  const [, hp, wp] = padded.shape;
  const outputSize: Pair = [
    Math.floor((hp - attrs.kernel[0]) / attrs.strides[0]) + 1,
    Math.floor((wp - attrs.kernel[1]) / attrs.strides[1]) + 1,
  ];
  const views = tf.stack(windowOffsets(attrs.kernel).map((offset) => windowView(padded, offset, outputSize, attrs.strides)));
  const isMax = tf.cast(tf.equal(views, tf.max(views, 0, true)), 'float32');
  const maxBefore = tf.cumsum(isMax, 0, true);
  return { mask: tf.mul(isMax, tf.cast(tf.equal(maxBefore, 0), 'float32')), outputSize };
}

export function maxPoolJvp(x: tf.Tensor, dx: tf.Tensor, attrs: PoolAttrs): tf.Tensor {
  const { mask, outputSize } = firstMaxMask(x, attrs);
  const dxPadded = padOrCrop(toNHWC(dx), attrs.pads);
  const dxViews = tf.stack(windowOffsets(attrs.kernel).map((offset) => windowView(dxPadded, offset, outputSize, attrs.strides)));
  return toNCHW(tf.sum(tf.mul(mask, dxViews), 0));
}

/** Transpose of maxPoolJvp: each offset's masked dy is interleaved for the stride and shifted to its offset. */
export function maxPoolBackprop(x: tf.Tensor, dy: tf.Tensor, attrs: PoolAttrs): tf.Tensor {
  const { mask, outputSize } = firstMaxMask(x, attrs);
  const [, , h, w] = x.shape;
  const [ho, wo] = outputSize;
  const [sh, sw] = attrs.strides;
  const [pt, pl] = attrs.pads;
  const routed = tf.unstack(tf.mul(mask, toNHWC(dy))) as tf.Tensor4D[];
  const parts = windowOffsets(attrs.kernel).map(([a, b], k) =>
    padOrCrop(interleaveZeros(routed[k], attrs.strides), [a - pt, b - pl, h + pt - a - ho * sh, w + pl - b - wo * sw]),
  );
  return toNCHW(tf.addN(parts));
}
