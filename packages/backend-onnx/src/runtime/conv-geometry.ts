import {
  BATCH,
  type Conv2DAttrs,
  type HostTensor,
  hostTensor,
  type Pads4,
  type Pair,
  type PoolAttrs,
  windowedSize,
} from '@gradfeat/core/engine';
import { type AttributeProto, attribute } from './proto.js';
import { describeShape } from './symbolic-shape.js';

/**
 * The geometry of convolutions and pooling windows, checked in one place: every conv lowering asks
 * `convGeometry` (or `poolGeometry`) and gets sizes it can trust.
 */
export interface WindowAttrs {
  readonly strides: Pair;
  readonly pads: Pads4;
  readonly dilations: Pair;
}

export interface ConvGeometry {
  /** Batch (may be -1), input channels and spatial size. */
  readonly batch: number;
  readonly inChannels: number;
  readonly inputSize: Pair;
  readonly outChannels: number;
  readonly inPerGroup: number;
  readonly outPerGroup: number;
  readonly kernel: Pair;
  readonly outputSize: Pair;
  readonly attrs: Conv2DAttrs;
}

export function expectRank4(shape: readonly number[], what: string): readonly [number, number, number, number] {
  if (shape.length !== 4) throw new Error(`${what} must be NCHW (rank 4), got ${describeShape(shape)}`);
  return shape as unknown as [number, number, number, number];
}

export function convOutputSize(inputSize: readonly number[], kernel: readonly number[], attrs: WindowAttrs): Pair {
  const [pt, pl, pb, pr] = attrs.pads;
  const rows = windowedSize(inputSize[0], kernel[0], attrs.strides[0], pt, pb, attrs.dilations[0]);
  const columns = windowedSize(inputSize[1], kernel[1], attrs.strides[1], pl, pr, attrs.dilations[1]);
  if (rows < 1 || columns < 1) throw new Error(`a ${inputSize.join('×')} input is too small for a ${kernel.join('×')} window`);
  return [rows, columns];
}

/** Checks an input shape against a filter shape [O, C/groups, kh, kw] under `attrs`. */
export function convGeometry(inputShape: readonly number[], filterShape: readonly number[], attrs: Conv2DAttrs): ConvGeometry {
  const [batch, inChannels, h, w] = expectRank4(inputShape, 'input');
  if (filterShape.length !== 4 || filterShape.includes(BATCH)) {
    throw new Error(`filter must be [out, in/groups, kh, kw] with known sizes, got ${describeShape(filterShape)}`);
  }
  const [outChannels, inPerGroup, kh, kw] = filterShape;
  const groups = attrs.groups;
  if (inChannels % groups !== 0 || outChannels % groups !== 0 || inChannels / groups !== inPerGroup) {
    throw new Error(`input ${describeShape(inputShape)} and filter ${describeShape(filterShape)} do not fit groups=${groups}`);
  }
  const outputSize = convOutputSize([h, w], [kh, kw], attrs);
  return {
    batch,
    inChannels,
    inputSize: [h, w],
    outChannels,
    inPerGroup,
    outPerGroup: outChannels / groups,
    kernel: [kh, kw],
    outputSize,
    attrs,
  };
}

/** Checks that a gradient of spatial size `outputSize` belongs to a conv of `geometry`'s input and kernel. */
export function expectConvOutput(outputSize: readonly number[], inputSize: Pair, kernel: readonly number[], attrs: WindowAttrs): void {
  const expected = convOutputSize(inputSize, kernel, attrs);
  if (outputSize[0] !== expected[0] || outputSize[1] !== expected[1]) {
    throw new Error(`a ${inputSize.join('×')} input gives ${expected.join('×')} windows, but the gradient is ${outputSize.join('×')}`);
  }
}

/**
 * Rows (columns) at the end of the input that no window reaches when the stride does not divide:
 * ConvTranspose's output_padding, which makes its output exactly the input size.
 */
export function transposedConvRemainder(inputSize: Pair, kernel: Pair, attrs: WindowAttrs): number[] {
  return [0, 1].map((axis) => {
    const span = inputSize[axis] + attrs.pads[axis] + attrs.pads[axis + 2] - attrs.dilations[axis] * (kernel[axis] - 1) - 1;
    return span % attrs.strides[axis];
  });
}

export function convAttributes(kernel: readonly number[], attrs: WindowAttrs & { readonly groups: number }): AttributeProto[] {
  return [
    attribute.ints('kernel_shape', kernel),
    attribute.ints('strides', attrs.strides),
    attribute.ints('pads', attrs.pads),
    attribute.ints('dilations', attrs.dilations),
    attribute.int('group', attrs.groups),
  ];
}

export function poolAttributes(attrs: PoolAttrs): AttributeProto[] {
  return [attribute.ints('kernel_shape', attrs.kernel), attribute.ints('strides', attrs.strides), attribute.ints('pads', attrs.pads)];
}

/** The pooled shape of an NCHW input, its window checked. */
export function pooledShape(inputShape: readonly number[], attrs: PoolAttrs): number[] {
  const [n, c, h, w] = expectRank4(inputShape, 'input');
  return [n, c, ...convOutputSize([h, w], attrs.kernel, { ...attrs, dilations: [1, 1] })];
}

/** 1 / (number of real, unpadded input positions) for every average-pooling window. */
export function windowReciprocals(inputSize: Pair, outputSize: readonly number[], attrs: PoolAttrs): HostTensor {
  const [ho, wo] = outputSize;
  const data = new Float32Array(ho * wo);
  const covered = (output: number, axis: 0 | 1): number => {
    const start = output * attrs.strides[axis] - attrs.pads[axis];
    return Math.min(start + attrs.kernel[axis], inputSize[axis]) - Math.max(start, 0);
  };
  for (let p = 0; p < ho; p++) for (let q = 0; q < wo; q++) data[p * wo + q] = 1 / (covered(p, 0) * covered(q, 1));
  return hostTensor([1, 1, ho, wo], data);
}

/**
 * For each output position (row-major) and filter tap (row-major), the flat index into the input
 * padded by `attrs.pads` (size (H + pt + pb) × (W + pl + pr)) that the tap reads: a Gather table
 * that builds the im2col matrix of any stride and dilation in one node.
 */
export function tapIndices(geometry: ConvGeometry, taps: readonly number[]): number[] {
  const { inputSize, kernel, outputSize, attrs } = geometry;
  const paddedWidth = inputSize[1] + attrs.pads[1] + attrs.pads[3];
  const indices: number[] = [];
  for (let p = 0; p < outputSize[0]; p++) {
    for (let q = 0; q < outputSize[1]; q++) {
      for (const tap of taps) {
        const i = Math.floor(tap / kernel[1]);
        const j = tap % kernel[1];
        indices.push((p * attrs.strides[0] + i * attrs.dilations[0]) * paddedWidth + q * attrs.strides[1] + j * attrs.dilations[1]);
      }
    }
  }
  return indices;
}
