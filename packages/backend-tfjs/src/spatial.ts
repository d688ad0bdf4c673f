import type { Pads4, Pair } from '@gradfeat/core/engine';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Layout helpers shared by the conv and pooling kernels. The IR is NCHW while TF.js convolutions and
 * pools are NHWC, so every spatial kernel works on NHWC internally and converts at its edges.
 */

export function toNHWC(x: tf.Tensor): tf.Tensor4D {
  return tf.transpose(x as tf.Tensor4D, [0, 2, 3, 1]);
}

export function toNCHW(x: tf.Tensor): tf.Tensor4D {
  return tf.transpose(x as tf.Tensor4D, [0, 3, 1, 2]);
}

/** TF.js explicit padding of an NHWC tensor from the IR's [top, left, bottom, right]. */
export function explicitPadding([top, left, bottom, right]: Pads4): tf.backend_util.ExplicitPadding {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/**
 * Pads (positive amounts, with `value`) or crops (negative amounts) the H and W axes of an NHWC
 * tensor; transposes of windowed ops need both, e.g. when a forward pad exceeds the kernel reach.
 */
export function padOrCrop(x: tf.Tensor4D, [top, left, bottom, right]: readonly number[], value = 0): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  let result = x;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) {
    const cropTop = Math.max(0, -top);
    const cropLeft = Math.max(0, -left);
    result = tf.slice(result, [0, cropTop, cropLeft, 0], [n, h - cropTop - Math.max(0, -bottom), w - cropLeft - Math.max(0, -right), c]);
  }
  if (top > 0 || left > 0 || bottom > 0 || right > 0) {
    result = tf.pad(
      result,
      [
        [0, 0],
        [Math.max(0, top), Math.max(0, bottom)],
        [Math.max(0, left), Math.max(0, right)],
        [0, 0],
      ],
      value,
    );
  }
  return result;
}

/**
 * Puts stride − 1 zeros after every element along H and W (so H becomes H·sh): the transpose of a
 * strided read, done as reshape → pad → reshape so that it runs on every runtime.
 */
export function interleaveZeros(x: tf.Tensor4D, [sh, sw]: Pair): tf.Tensor4D {
  if (sh === 1 && sw === 1) return x;
  const [n, h, w, c] = x.shape;
  const split = tf.reshape(x, [n, h, 1, w, 1, c]);
  const padded = tf.pad(split, [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  return tf.reshape(padded, [n, h * sh, w * sw, c]);
}

/** Extent of a dilated window: the span of input rows one output reads. */
export function windowExtent(kernel: number, dilation: number): number {
  return dilation * (kernel - 1) + 1;
}

/**
 * Lays out dy [N, Ho, Wo, C] so that a stride-1 forward correlation with the (flipped) window yields
 * the transpose of a strided, padded window op over an input of `inputSize`: zeros interleaved for
 * the stride, then the borders of a full correlation minus the forward padding. Along one axis the
 * leading border is extent − 1 − padBegin and the total length comes out as input + extent − 1.
 */
export function spreadForTranspose(dy: tf.Tensor4D, inputSize: Pair, extent: Pair, strides: Pair, pads: Pads4): tf.Tensor4D {
  const [, ho, wo] = dy.shape;
  const [h, w] = inputSize;
  const [pt, pl] = pads;
  return padOrCrop(interleaveZeros(dy, strides), [
    extent[0] - 1 - pt,
    extent[1] - 1 - pl,
    h + pt - ho * strides[0],
    w + pl - wo * strides[1],
  ]);
}

/** A mutable copy of an IR pair, as TF.js's signatures want. */
export function mutablePair([first, second]: Pair): [number, number] {
  return [first, second];
}
