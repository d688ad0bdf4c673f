import type { Pair, Preprocessing } from '@gradfeat/core';
import type { RgbImage } from './types.js';

/** (x/255 − mean) / std per RGB channel, or x × scale + offset, x being the 0…255 pixel value. */
export type Normalization =
  | { readonly mean: readonly number[]; readonly std: readonly number[] }
  | { readonly scale: number; readonly offset: number };

/** How a transform crops: centre, the ten crops, or a random resized crop (training). */
export type CropMode = 'center' | 'ten-crop' | 'random-resized';

/** What turns a decoded image into model input. Plain data, so it travels to worker threads and into cache keys. */
export interface TransformSpec {
  /** Output [height, width]. */
  readonly size: Pair;
  /**
   * 'center': resize the shorter side to `resizeShorter`, then crop the centre. 'ten-crop': the same
   * resize, then the 4 corner crops and the centre crop followed by their mirror images (10 outputs per
   * image, the paper's test protocol). 'random-resized': a random region of random area and aspect
   * ratio resized to `size` (training augmentation).
   */
  readonly crop: CropMode;
  /** Shorter side after resizing, for 'center' and 'ten-crop'. Default: the larger side of `size`. */
  readonly resizeShorter?: number;
  /** 'random-resized': range of the region's area as a fraction of the image. Default [0.08, 1]. */
  readonly areaRange?: Pair;
  /** 'random-resized': range of the region's width / height. Default [3/4, 4/3]. */
  readonly aspectRange?: Pair;
  /** Mirror each image left–right with probability ½ (not with 'ten-crop', which has its mirrors built in). */
  readonly flip?: boolean;
  /** Default: x / 255. */
  readonly normalize?: Normalization;
  /** Default NCHW, the layout of gradfeat's IR. */
  readonly layout?: 'NCHW' | 'NHWC';
  /** Seeds the random crops and flips; each sample's randomness derives from (seed, epoch, index). Default 0. */
  readonly seed?: number;
}

const DEFAULT_AREA: Pair = [0.08, 1];
const DEFAULT_ASPECT: Pair = [3 / 4, 4 / 3];

/** Rows a transform yields per image: 10 for ten-crop, else 1. */
export function cropsPerImage(spec: TransformSpec): number {
  return spec.crop === 'ten-crop' ? 10 : 1;
}

/** Shape of one output row (one crop), without the batch dimension. */
export function transformedShape(spec: TransformSpec): number[] {
  const [height, width] = spec.size;
  return spec.layout === 'NHWC' ? [height, width, 3] : [3, height, width];
}

/** Fails with what is wrong with a spec before any image is processed. */
export function validateTransform(spec: TransformSpec): void {
  const positive = (value: number) => Number.isInteger(value) && value > 0;
  if (!positive(spec.size[0]) || !positive(spec.size[1]))
    throw new Error(`transform size must be two positive integers, got [${spec.size}]`);
  if (!['center', 'ten-crop', 'random-resized'].includes(spec.crop)) {
    throw new Error(`transform crop must be 'center', 'ten-crop' or 'random-resized', got '${spec.crop}'`);
  }
  if (spec.resizeShorter !== undefined && !positive(spec.resizeShorter)) {
    throw new Error(`transform resizeShorter must be a positive integer, got ${spec.resizeShorter}`);
  }
  if (spec.flip && spec.crop === 'ten-crop')
    throw new Error("transform flip does not apply to 'ten-crop', which already includes the mirrored crops");
  const normalize = spec.normalize;
  if (
    normalize &&
    'mean' in normalize &&
    (normalize.mean.length !== 3 || normalize.std.length !== 3 || normalize.std.some((s) => !(s > 0)))
  ) {
    throw new Error('transform normalize needs 3 means and 3 positive standard deviations (R, G, B)');
  }
}

/**
 * The transform a model's own preprocessing calls for: 'train' (random-resized crop + flip),
 * 'eval' (resize + centre crop) or 'ten-crop'. The size comes from the model unless given.
 */
export function transformForModel(
  preprocessing: Preprocessing,
  mode: 'train' | 'eval' | 'ten-crop',
  options: { readonly size?: Pair; readonly resizeShorter?: number; readonly seed?: number } = {},
): TransformSpec {
  const size = options.size ?? preprocessing.size;
  if (!size) throw new Error("the model's preprocessing does not give an input size; pass one (e.g. size: [224, 224])");
  const { mean, std, scale, offset } = preprocessing;
  if ((mean || std) && (scale !== undefined || offset !== undefined)) {
    throw new Error("the model's preprocessing gives both mean/std and scale/offset; expected one of them");
  }
  if ((mean === undefined) !== (std === undefined)) throw new Error("the model's preprocessing gives only one of mean and std");
  const normalize: Normalization | undefined =
    mean && std ? { mean, std } : scale !== undefined || offset !== undefined ? { scale: scale ?? 1, offset: offset ?? 0 } : undefined;
  const spec: TransformSpec =
    mode === 'train'
      ? { size, crop: 'random-resized', flip: true, normalize, seed: options.seed }
      : { size, crop: mode === 'eval' ? 'center' : 'ten-crop', resizeShorter: options.resizeShorter, normalize };
  validateTransform(spec);
  return spec;
}

/** A region of the source image in pixel units (fractional for resized crops). */
interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/**
 * Writes the spec's output rows for one image (cropsPerImage × sampleSize values) into `out` at
 * `offset`. `random` must be seeded per sample so results do not depend on which thread ran it.
 */
export function transformImage(image: RgbImage, spec: TransformSpec, random: () => number, out: Float32Array, offset: number): void {
  const [height, width] = spec.size;
  const rowSize = 3 * height * width;
  if (spec.crop === 'random-resized') {
    const box = randomResizedBox(image, spec.areaRange ?? DEFAULT_AREA, spec.aspectRange ?? DEFAULT_ASPECT, random);
    const mirror = spec.flip === true && random() < 0.5;
    writeOutput(resample(image, box, width, height), spec, mirror, out, offset);
    return;
  }
  const shorter = spec.resizeShorter ?? Math.max(height, width);
  const [resizedWidth, resizedHeight] =
    image.width <= image.height
      ? [shorter, Math.floor((shorter * image.height) / image.width)]
      : [Math.floor((shorter * image.width) / image.height), shorter];
  if (resizedWidth < width || resizedHeight < height) {
    throw new Error(
      `a ${image.width}×${image.height} image resized to ${resizedWidth}×${resizedHeight} is smaller than the ${width}×${height} crop`,
    );
  }
  const scaleX = image.width / resizedWidth;
  const scaleY = image.height / resizedHeight;
  const cropBox = (top: number, left: number): Box => ({
    x: left * scaleX,
    y: top * scaleY,
    width: width * scaleX,
    height: height * scaleY,
  });
  const centre = cropBox(roundHalfEven((resizedHeight - height) / 2), roundHalfEven((resizedWidth - width) / 2));
  if (spec.crop === 'center') {
    const mirror = spec.flip === true && random() < 0.5;
    writeOutput(resample(image, centre, width, height), spec, mirror, out, offset);
    return;
  }
  const bottom = resizedHeight - height;
  const right = resizedWidth - width;
  const crops = [cropBox(0, 0), cropBox(0, right), cropBox(bottom, 0), cropBox(bottom, right), centre].map((box) =>
    resample(image, box, width, height),
  );
  for (const [i, crop] of crops.entries()) {
    writeOutput(crop, spec, false, out, offset + i * rowSize);
    writeOutput(crop, spec, true, out, offset + (i + 5) * rowSize);
  }
}

/** torchvision's RandomResizedCrop region: 10 tries at a random area and log-uniform aspect, else a centre crop. */
function randomResizedBox(image: RgbImage, areaRange: Pair, aspectRange: Pair, random: () => number): Box {
  const area = image.width * image.height;
  const logLow = Math.log(aspectRange[0]);
  const logHigh = Math.log(aspectRange[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * (areaRange[0] + random() * (areaRange[1] - areaRange[0]));
    const aspect = Math.exp(logLow + random() * (logHigh - logLow));
    const width = Math.round(Math.sqrt(targetArea * aspect));
    const height = Math.round(Math.sqrt(targetArea / aspect));
    if (width > 0 && width <= image.width && height > 0 && height <= image.height) {
      const y = Math.floor(random() * (image.height - height + 1));
      const x = Math.floor(random() * (image.width - width + 1));
      return { x, y, width, height };
    }
  }
  const ratio = image.width / image.height;
  let width = image.width;
  let height = image.height;
  if (ratio < aspectRange[0]) height = Math.round(width / aspectRange[0]);
  else if (ratio > aspectRange[1]) width = Math.round(height * aspectRange[1]);
  return { x: Math.floor((image.width - width) / 2), y: Math.floor((image.height - height) / 2), width, height };
}

/** Python's round(): halves go to the even neighbour (torchvision computes its centre crop offset with it). */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Per output position along one axis: first source pixel, tap count and normalised weights. */
interface AxisTaps {
  readonly first: Int32Array;
  readonly count: Int32Array;
  readonly weights: Float32Array;
  readonly stride: number;
}

/**
 * Bilinear (triangle) weights as Pillow's resampler computes them: sample centres at half pixels, and
 * the filter widened by the reduction factor when shrinking so every source pixel contributes (antialias).
 */
function axisTaps(inSize: number, start: number, length: number, outSize: number): AxisTaps {
  const scale = length / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * stride);
  for (let o = 0; o < outSize; o++) {
    const centre = start + (o + 0.5) * scale;
    const low = Math.max(Math.trunc(centre - support + 0.5), 0);
    const high = Math.min(Math.trunc(centre + support + 0.5), inSize);
    let total = 0;
    for (let x = low; x < high; x++) {
      const w = Math.max(0, 1 - Math.abs((x - centre + 0.5) / filterScale));
      weights[o * stride + (x - low)] = w;
      total += w;
    }
    if (total === 0) throw new Error(`resampling position ${o} falls outside the ${inSize}-pixel image`);
    for (let x = low; x < high; x++) weights[o * stride + (x - low)] /= total;
    first[o] = low;
    count[o] = high - low;
  }
  return { first, count, weights, stride };
}

/** The box of `image` resampled to width × height, as interleaved RGB floats in 0…255. */
function resample(image: RgbImage, box: Box, width: number, height: number): Float32Array {
  const columns = axisTaps(image.width, box.x, box.width, width);
  const rows = axisTaps(image.height, box.y, box.height, height);
  const firstRow = rows.first[0];
  const lastRow = rows.first[height - 1] + rows.count[height - 1];
  // Horizontal pass over only the source rows the vertical pass will read.
  const horizontal = new Float32Array((lastRow - firstRow) * width * 3);
  for (let y = firstRow; y < lastRow; y++) {
    const source = y * image.width * 3;
    const target = (y - firstRow) * width * 3;
    for (let o = 0; o < width; o++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const tap0 = o * columns.stride;
      for (let t = 0; t < columns.count[o]; t++) {
        const w = columns.weights[tap0 + t];
        const p = source + (columns.first[o] + t) * 3;
        r += w * image.data[p];
        g += w * image.data[p + 1];
        b += w * image.data[p + 2];
      }
      horizontal[target + 3 * o] = r;
      horizontal[target + 3 * o + 1] = g;
      horizontal[target + 3 * o + 2] = b;
    }
  }
  const result = new Float32Array(height * width * 3);
  for (let o = 0; o < height; o++) {
    const tap0 = o * rows.stride;
    for (let t = 0; t < rows.count[o]; t++) {
      const w = rows.weights[tap0 + t];
      const source = (rows.first[o] + t - firstRow) * width * 3;
      const target = o * width * 3;
      for (let i = 0; i < width * 3; i++) result[target + i] += w * horizontal[source + i];
    }
  }
  return result;
}

/** Normalises interleaved 0…255 RGB into the output layout, mirrored left–right when asked. */
function writeOutput(rgb: Float32Array, spec: TransformSpec, mirror: boolean, out: Float32Array, offset: number): void {
  const [height, width] = spec.size;
  const normalize = spec.normalize ?? { scale: 1 / 255, offset: 0 };
  // NCHW writes channel c of pixel p at c·plane + p, NHWC at 3p + c.
  const [channelStride, pixelStride] = spec.layout === 'NHWC' ? [1, 3] : [height * width, 1];
  for (let c = 0; c < 3; c++) {
    const multiply = 'mean' in normalize ? 1 / (255 * normalize.std[c]) : normalize.scale;
    const add = 'mean' in normalize ? -normalize.mean[c] / normalize.std[c] : normalize.offset;
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) {
        const source = 3 * (row + (mirror ? width - 1 - x : x)) + c;
        out[offset + c * channelStride + (row + x) * pixelStride] = rgb[source] * multiply + add;
      }
    }
  }
}
