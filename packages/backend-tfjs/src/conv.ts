import type { Conv2DAttrs, Pair } from '@gradfeat/core/engine';
import * as tf from '@tensorflow/tfjs-core';
import { explicitPadding, mutablePair, padOrCrop, spreadForTranspose, toNCHW, toNHWC, windowExtent } from './spatial.js';

/**
 * Conv2D and its two transposes for TF.js. The backprops are built from forward convolutions
 * because tfjs-wasm has no Conv2DBackpropFilter and no depthwise backprop kernels, and the pure-JS
 * cpu backprops are far slower than its forward conv; only runtimes with fast native kernels
 * (tfjs-node) take `nativeBackprop` for the plain (ungrouped, undilated) case. Never tf.grad: the
 * op rules in core are gradfeat's own, and grad-of-grad through conv filters fails on TF.js.
 */
export interface ConvKernelOptions {
  readonly nativeBackprop: boolean;
}

type Padding = tf.backend_util.ExplicitPadding | 'valid';
const UNIT: Pair = [1, 1];

/**
 * Forward correlation of NHWC x with a [kh, kw, in, out] filter, or a [kh, kw, C, multiplier] one
 * when depthwise. TF.js rejects a stride and a dilation both above 1, so that case runs at stride 1
 * and subsamples the result.
 */
function correlate(x: tf.Tensor4D, filter: tf.Tensor4D, strides: Pair, dilations: Pair, padding: Padding, depthwise: boolean): tf.Tensor4D {
  const strided = strides[0] > 1 || strides[1] > 1;
  const dilated = dilations[0] > 1 || dilations[1] > 1;
  const convStrides = strided && dilated ? UNIT : strides;
  const y = depthwise
    ? tf.depthwiseConv2d(x, filter, mutablePair(convStrides), padding, 'NHWC', mutablePair(dilations))
    : tf.conv2d(x, filter, mutablePair(convStrides), padding, 'NHWC', mutablePair(dilations));
  if (convStrides === strides) return y;
  return tf.stridedSlice(y, [0, 0, 0, 0], y.shape, [1, strides[0], strides[1], 1]) as tf.Tensor4D;
}

function isDepthwise(channels: number, groups: number): boolean {
  return groups > 1 && groups === channels;
}

/** IR weight [O, C/groups, kh, kw] → TF.js filter [kh, kw, C/groups, O]. */
function tfFilter(weight: tf.Tensor): tf.Tensor4D {
  return tf.transpose(weight as tf.Tensor4D, [2, 3, 1, 0]);
}

/** IR depthwise weight [C·M, 1, kh, kw] (output c·M + m reads channel c) → TF.js [kh, kw, C, M]. */
function tfDepthwiseFilter(weight: tf.Tensor, channels: number): tf.Tensor4D {
  const [out, , kh, kw] = weight.shape;
  return tf.transpose(tf.reshape(weight, [channels, out / channels, kh, kw]), [2, 3, 0, 1]);
}

/** Runs `perGroup` on matching channel groups of each operand (split along the given axes) and concatenates. */
function byGroups(
  groups: number,
  operands: readonly [tf.Tensor, number][],
  concatAxis: number,
  perGroup: (parts: tf.Tensor[]) => tf.Tensor,
): tf.Tensor {
  const split = operands.map(([tensor, axis]) => tf.split(tensor, groups, axis));
  return tf.concat(
    split[0].map((_, g) => perGroup(split.map((parts) => parts[g]))),
    concatAxis,
  );
}

export function conv2d(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | undefined, attrs: Conv2DAttrs): tf.Tensor {
  const xn = toNHWC(x);
  const { strides, dilations, groups } = attrs;
  const padding = explicitPadding(attrs.pads);
  const channels = xn.shape[3];
  let y: tf.Tensor;
  if (groups === 1) y = correlate(xn, tfFilter(weight), strides, dilations, padding, false);
  else if (isDepthwise(channels, groups)) y = correlate(xn, tfDepthwiseFilter(weight, channels), strides, dilations, padding, true);
  else
    y = byGroups(
      groups,
      [
        [xn, 3],
        [weight, 0],
      ],
      3,
      ([xg, wg]) => correlate(xg as tf.Tensor4D, tfFilter(wg), strides, dilations, padding, false),
    );
  // NHWC: a bias [O] broadcasts along the channel axis.
  return toNCHW(bias ? tf.add(y, bias) : y);
}

function undilated(attrs: Conv2DAttrs): boolean {
  return attrs.dilations[0] === 1 && attrs.dilations[1] === 1;
}

/**
 * dx = a stride-1 correlation of the zero-interleaved, bordered dy with the spatially flipped kernel,
 * its in/out channels swapped, at the forward dilation.
 */
export function conv2dBackpropInput(
  dy: tf.Tensor,
  weight: tf.Tensor,
  inputSize: Pair,
  attrs: Conv2DAttrs,
  options: ConvKernelOptions,
): tf.Tensor {
  const dyn = toNHWC(dy);
  const { strides, dilations, groups, pads } = attrs;
  const [out, inPerGroup, kh, kw] = weight.shape;
  const channels = inPerGroup * groups;
  if (options.nativeBackprop && groups === 1 && undilated(attrs)) {
    // Valid padding then a crop: explicit padding is not supported by every native backprop kernel.
    const [n] = dyn.shape;
    const paddedSize: [number, number, number, number] = [n, inputSize[0] + pads[0] + pads[2], inputSize[1] + pads[1] + pads[3], channels];
    const dxPadded = tf.conv2dTranspose(dyn, tfFilter(weight), paddedSize, mutablePair(strides), 'valid');
    return toNCHW(
      padOrCrop(
        dxPadded,
        pads.map((p) => -p),
      ),
    );
  }
  const spread = spreadForTranspose(dyn, inputSize, [windowExtent(kh, dilations[0]), windowExtent(kw, dilations[1])], strides, pads);
  const flipped = tf.transpose(tf.reverse(weight, [2, 3]), [2, 3, 0, 1]) as tf.Tensor4D;
  let dx: tf.Tensor;
  if (groups === 1) dx = correlate(spread, flipped, UNIT, dilations, 'valid', false);
  else if (isDepthwise(channels, groups)) {
    // Each output channel c·M + m is its own depthwise channel here; its M contributions to c are summed.
    const perOutput = correlate(spread, flipped, UNIT, dilations, 'valid', true);
    const [n, h, w] = perOutput.shape;
    dx = out === channels ? perOutput : tf.sum(tf.reshape(perOutput, [n, h, w, channels, out / channels]), 4);
  } else
    dx = byGroups(
      groups,
      [
        [spread, 3],
        [flipped, 2],
      ],
      3,
      ([spreadGroup, filterGroup]) => correlate(spreadGroup as tf.Tensor4D, filterGroup as tf.Tensor4D, UNIT, dilations, 'valid', false),
    );
  return toNCHW(dx);
}

/**
 * dw[a, b, c, o] = Σ_{n,i,j} xpad[n, a·dh + i·sh, b·dw + j·sw, c] · dy[n, i, j, o]: a forward
 * correlation of the padded input with batch and channels swapped, dy as the filter, and stride and
 * dilation swapped. The input is first cut to the rows some output reads, so the result is exactly
 * kh × kw.
 */
export function conv2dBackpropFilter(
  x: tf.Tensor,
  dy: tf.Tensor,
  filterShape: readonly number[],
  attrs: Conv2DAttrs,
  options: ConvKernelOptions,
): tf.Tensor {
  const xn = toNHWC(x);
  const dyn = toNHWC(dy);
  const { strides, dilations, groups, pads } = attrs;
  const [out, inPerGroup, kh, kw] = filterShape;
  const [, h, w, channels] = xn.shape;
  const [, ho, wo] = dyn.shape;
  const usedRows = windowExtent(kh, dilations[0]) + (ho - 1) * strides[0];
  const usedCols = windowExtent(kw, dilations[1]) + (wo - 1) * strides[1];
  const used = padOrCrop(xn, [pads[0], pads[1], usedRows - pads[0] - h, usedCols - pads[1] - w]);
  if (options.nativeBackprop && groups === 1 && undilated(attrs)) {
    const grad = tf
      .engine()
      .runKernel<tf.Tensor4D>(
        'Conv2DBackpropFilter',
        { x: used, dy: dyn },
        { strides: [...strides], pad: 'valid', dataFormat: 'NHWC', filterShape: [kh, kw, inPerGroup, out] },
      );
    return tf.transpose(grad, [3, 2, 0, 1]);
  }
  if (groups === 1) return singleFilterGrad(used, dyn, strides, dilations);
  if (isDepthwise(channels, groups)) return depthwiseFilterGrad(used, dyn, strides, dilations, out / channels);
  return byGroups(
    groups,
    [
      [used, 3],
      [dyn, 3],
    ],
    0,
    ([usedGroup, dyGroup]) => singleFilterGrad(usedGroup as tf.Tensor4D, dyGroup as tf.Tensor4D, strides, dilations),
  );
}

/** Ungrouped filter gradient [O, C, kh, kw] from the used input [N, Hu, Wu, C] and dy [N, Ho, Wo, O]. */
function singleFilterGrad(used: tf.Tensor4D, dy: tf.Tensor4D, strides: Pair, dilations: Pair): tf.Tensor {
  const channelsAsBatch = tf.transpose(used, [3, 1, 2, 0]);
  const dyAsFilter = tf.transpose(dy, [1, 2, 0, 3]);
  const grad = correlate(channelsAsBatch, dyAsFilter, dilations, strides, 'valid', false);
  return tf.transpose(grad, [3, 0, 1, 2]);
}

/**
 * Depthwise filter gradient [C·M, 1, kh, kw]: batch and channels are folded into N·C depthwise
 * channels of one image, correlated with dy as an [Ho, Wo, N·C, M] filter, then summed over N.
 */
function depthwiseFilterGrad(used: tf.Tensor4D, dy: tf.Tensor4D, strides: Pair, dilations: Pair, multiplier: number): tf.Tensor {
  const [n, hu, wu, channels] = used.shape;
  const [, ho, wo] = dy.shape;
  const image = tf.reshape<tf.Rank.R4>(tf.transpose(used, [1, 2, 0, 3]), [1, hu, wu, n * channels]);
  const filter = tf.reshape<tf.Rank.R4>(tf.transpose(tf.reshape(dy, [n, ho, wo, channels, multiplier]), [1, 2, 0, 3, 4]), [
    ho,
    wo,
    n * channels,
    multiplier,
  ]);
  const perSample = correlate(image, filter, dilations, strides, 'valid', true);
  const [, kh, kw] = perSample.shape;
  const grad = tf.sum(tf.reshape(perSample, [kh, kw, n, channels * multiplier]), 2);
  return tf.reshape(tf.transpose(grad, [2, 0, 1]), [channels * multiplier, 1, kh, kw]);
}
