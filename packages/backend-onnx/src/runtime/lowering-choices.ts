import type { NchwcAlgorithm } from './blocked-layout.js';
import type { ConvGeometry } from './conv-geometry.js';

/*
 * The speed heuristics of the ONNX lowering, apart from the lowering itself: which of the equivalent
 * ways to run a kernel ONNX Runtime's CPU kernels run fastest, decided from shapes alone. Every way
 * gives the same numbers (the conformance cases run them all); the thresholds come from measurements
 * on 2-core x86 machines (packages/backend-onnx/bench/profile-step.ts).
 */

/** Output pixels per image up to which a whole im2col matrix is built (else one filter tap at a time). */
const SMALL_IMAGE = 256;

/**
 * Values of a pointwise conv's filter (O × C) from which its gradient is one GEMM of dy and x laid out
 * channels-first, [O, N·h·w]·[C, N·h·w]ᵀ: 1.5× faster than from channels-last rows, layout changes
 * included, on MobileNet's block 13 (256 × 256 at 7×7); smaller filters give too few output tiles for
 * ONNX Runtime's threads.
 */
const POINTWISE_PRODUCT = 2 ** 16;

/** Values of a filter gradient (O × kh·kw·C) up to which its long GEMM is split into chunks (see rowSumChunks). */
const SMALL_PRODUCT = 2 ** 17;

/** One input channel per group: a depthwise conv (with a channel multiplier when outPerGroup > 1). */
function isDepthwise(geometry: ConvGeometry): boolean {
  return geometry.attrs.groups > 1 && geometry.inPerGroup === 1;
}

/** Whether a conv's im2col matrix is built whole rather than one filter tap at a time. */
export function wholeColumns(geometry: ConvGeometry): boolean {
  return geometry.outputSize[0] * geometry.outputSize[1] <= SMALL_IMAGE;
}

/**
 * How a conv runs:
 *  - 'nchwc': ONNX Runtime's NCHWc Conv, for any filter, when the channels fill its blocks;
 *  - 'onnx-conv': the standard Conv, which reorders a constant filter into NCHWc itself, and is the
 *    best left for large images and depthwise filters (per-channel GEMMs would be all overhead);
 *  - 'per-group': one conv per group;
 *  - 'im2col-gemm': a filter computed at run time (the tangent's Ẇ, or θ2 while fine-tuning) on a small
 *    image, as one GEMM over the whole batch's im2col matrix, several times faster than ONNX Runtime's
 *    per-image GEMMs only Ho·Wo wide.
 */
export type ConvLowering = 'nchwc' | 'onnx-conv' | 'per-group' | 'im2col-gemm';

export function convLowering(geometry: ConvGeometry, nchwc: NchwcAlgorithm | undefined, constantFilter: boolean): ConvLowering {
  if (nchwc) return 'nchwc';
  if (constantFilter || !wholeColumns(geometry) || isDepthwise(geometry)) return 'onnx-conv';
  return geometry.attrs.groups > 1 ? 'per-group' : 'im2col-gemm';
}

/**
 * How a filter gradient runs (ONNX has no op for it):
 *  - 'nchwc-depthwise': a depthwise conv on blocked data as one NCHWc conv (BlockedLayout);
 *  - 'depthwise-taps': a depthwise conv's im2col rows times dy's, channel by channel;
 *  - 'per-group': one filter gradient per group;
 *  - 'pointwise-channels-first': a large pointwise filter as one GEMM of dy and x channels-first;
 *  - 'im2col-gemm': one GEMM with K = N·Ho·Wo between dy's rows and x's whole im2col matrix;
 *  - 'per-tap-gemm': on large images one GEMM per filter tap, so that only one tap's copy of x is alive.
 */
export type FilterGradientLowering =
  | 'nchwc-depthwise'
  | 'depthwise-taps'
  | 'per-group'
  | 'pointwise-channels-first'
  | 'im2col-gemm'
  | 'per-tap-gemm';

export function filterGradientLowering(geometry: ConvGeometry, nchwc: NchwcAlgorithm | undefined): FilterGradientLowering {
  const { attrs, kernel, inChannels, outChannels } = geometry;
  const unitSteps = attrs.strides.every((s) => s === 1) && attrs.dilations.every((d) => d === 1);
  if (nchwc === 'depthwise' && unitSteps) return 'nchwc-depthwise';
  if (isDepthwise(geometry) && geometry.outPerGroup === 1) return 'depthwise-taps';
  if (attrs.groups > 1) return 'per-group';
  const pointwise = kernel[0] * kernel[1] === 1 && unitSteps && attrs.pads.every((p) => p === 0);
  if (pointwise && outChannels * inChannels >= POINTWISE_PRODUCT) return 'pointwise-channels-first';
  return wholeColumns(geometry) ? 'im2col-gemm' : 'per-tap-gemm';
}

/**
 * How many chunks of contiguous rows a filter gradient's GEMM dyᵀ·rows with K = batch·pixels is split
 * into (summed afterwards), or undefined for one GEMM. When M·N is small, ONNX Runtime spreads a batch
 * of GEMMs over its threads, and a single GEMM with so long a K and so few columns is 2-5× slower;
 * for a large product, summing the chunks' products would cost a pass over them all.
 */
export function rowSumChunks(aColumns: number, bColumns: number, pixelsPerImage: number): number | undefined {
  if (aColumns * bColumns > SMALL_PRODUCT) return undefined;
  return [4, 2, 3, 5, 7].find((d) => pixelsPerImage % d === 0);
}
