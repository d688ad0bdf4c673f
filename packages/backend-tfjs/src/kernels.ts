import { type HostTensor, type Kernels, withStorageOrder } from '@gradfeat/core/engine';
import * as tf from '@tensorflow/tfjs-core';
import { type ConvKernelOptions, conv2d, conv2dBackpropFilter, conv2dBackpropInput } from './conv.js';
import { avgPool, avgPoolBackprop, maxPool, maxPoolBackprop, maxPoolJvp } from './pooling.js';

/** gradfeat's comparisons are float 1/0, TF.js's are bool. */
function asFloat(x: tf.Tensor): tf.Tensor {
  return tf.cast(x, 'float32');
}

/** Flat [begin per axis…, end per axis…] → TF.js per-axis pairs. */
function padPairs(pads: readonly number[]): [number, number][] {
  const rank = pads.length / 2;
  return Array.from({ length: rank }, (_, axis) => [pads[axis], pads[rank + axis]]);
}

/**
 * Every kernel of the contract on TF.js, NCHW in and out. `constant` is supplied by the caller,
 * which owns the upload cache and its lifetime.
 */
export function tfjsKernels(constant: (value: HostTensor) => tf.Tensor, conv: ConvKernelOptions): Kernels<tf.Tensor> {
  return withStorageOrder({
    shape: (x) => x.shape,
    constant,
    scalar: (value) => tf.scalar(value, 'float32'),

    add: (a, b) => tf.add(a, b),
    sub: (a, b) => tf.sub(a, b),
    mul: (a, b) => tf.mul(a, b),
    div: (a, b) => tf.div(a, b),
    maximum: (a, b) => tf.maximum(a, b),
    minimum: (a, b) => tf.minimum(a, b),
    greater: (a, b) => asFloat(tf.greater(a, b)),
    less: (a, b) => asFloat(tf.less(a, b)),
    exp: (x) => tf.exp(x),
    log: (x) => tf.log(x),
    abs: (x) => tf.abs(x),
    sqrt: (x) => tf.sqrt(x),

    sum: (x, axes, keepDims) => tf.sum(x, [...axes], keepDims),
    max: (x, axes, keepDims) => tf.max(x, [...axes], keepDims),

    reshape: (x, shape) => tf.reshape(x, [...shape]),
    transpose: (x, perm) => tf.transpose(x, [...perm]),
    pad: (x, pads) => tf.pad(x, padPairs(pads)),
    slice: (x, begins, ends, steps) =>
      tf.stridedSlice(
        x,
        [...begins],
        ends.map((end, axis) => Math.min(end, x.shape[axis])),
        [...steps],
      ),
    concat: (xs, axis) => tf.concat([...xs], axis),

    matMul: (a, b, transposeA, transposeB) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, transposeA, transposeB),

    conv2d,
    conv2dBackpropInput: (dy, w, inputSize, attrs) => conv2dBackpropInput(dy, w, inputSize, attrs, conv),
    conv2dBackpropFilter: (x, dy, filterShape, attrs) => conv2dBackpropFilter(x, dy, filterShape, attrs, conv),

    avgPool,
    avgPoolBackprop,
    maxPool,
    maxPoolJvp,
    maxPoolBackprop,
  });
}
