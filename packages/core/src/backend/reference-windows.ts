import type { Conv2DAttrs, Pair, PoolAttrs } from '../ir/graph.js';
import { windowedSize } from '../ops/parametric.js';
import { formatShape, sameShape, sizeOf } from '../tensor.js';
import type { ReferenceTensor } from './reference.js';

/**
 * The reference backend's windowed kernels: convolutions and pools, NCHW. Each family walks its
 * windows once in a shared helper, so a kernel and its transpose visit exactly the same
 * (input, output) pairs and differ only in which side they read and which they accumulate into.
 */

interface ConvGeometry {
  readonly batch: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly outChannels: number;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly attrs: Conv2DAttrs;
}

function checkRank4(kernel: string, role: string, shape: readonly number[]): void {
  if (shape.length !== 4) throw new Error(`${kernel}: ${role} must be 4-D, got ${formatShape(shape)}`);
}

/**
 * Checks that input [N,C,H,W], filter [O,C/groups,kh,kw] and (when given) output [N,O,Ho,Wo] fit
 * together under `attrs`.
 */
function convGeometry(
  kernel: string,
  input: readonly number[],
  filter: readonly number[],
  attrs: Conv2DAttrs,
  output?: readonly number[],
): ConvGeometry {
  checkRank4(kernel, 'input', input);
  checkRank4(kernel, 'filter', filter);
  const [batch, channels, height, width] = input;
  const [outChannels, inPerGroup, kernelHeight, kernelWidth] = filter;
  const { groups, strides, pads, dilations } = attrs;
  if (channels % groups !== 0 || outChannels % groups !== 0 || channels / groups !== inPerGroup) {
    throw new Error(`${kernel}: input ${formatShape(input)} and filter ${formatShape(filter)} do not fit groups=${groups}`);
  }
  const outHeight = windowedSize(height, kernelHeight, strides[0], pads[0], pads[2], dilations[0]);
  const outWidth = windowedSize(width, kernelWidth, strides[1], pads[1], pads[3], dilations[1]);
  if (outHeight < 1 || outWidth < 1) {
    throw new Error(`${kernel}: input ${formatShape(input)} is too small for filter ${formatShape(filter)} with pads [${pads.join(', ')}]`);
  }
  const expected = [batch, outChannels, outHeight, outWidth];
  if (output && expected.some((d, i) => d !== output[i])) {
    throw new Error(
      `${kernel}: output gradient ${formatShape(output)} does not match input ${formatShape(input)} and filter ${formatShape(filter)}; expected ${formatShape(expected)}`,
    );
  }
  return { batch, channels, height, width, outChannels, outHeight, outWidth, kernelHeight, kernelWidth, attrs };
}

/**
 * Outputs o whose input position o·stride + shift lies inside [0, size): the range [first, end).
 * `shift` is tap·dilation − padBegin.
 */
function validOutputs(size: number, outSize: number, stride: number, shift: number): { first: number; end: number } {
  const first = Math.max(0, Math.ceil(-shift / stride));
  const end = Math.min(outSize, Math.floor((size - 1 - shift) / stride) + 1);
  return { first, end: Math.max(first, end) };
}

/**
 * Calls `visit` once per (sample, output channel, input channel of its group, kernel tap) with the
 * rectangle of outputs that tap reads from inside the input (padding contributes nothing): the
 * offsets of its first input and first output, the weight's index, and the rectangle's size. Inside
 * the rectangle the input advances by stride·W per row and stride per column, the output by Wo and 1.
 */
function forEachTap(g: ConvGeometry, visit: (x0: number, y0: number, wIndex: number, rows: number, cols: number) => void): void {
  const { strides, pads, dilations, groups } = g.attrs;
  const inPerGroup = g.channels / groups;
  const outPerGroup = g.outChannels / groups;
  const rowRanges = Array.from({ length: g.kernelHeight }, (_, ky) => {
    const shift = ky * dilations[0] - pads[0];
    const range = validOutputs(g.height, g.outHeight, strides[0], shift);
    return { ...range, input: range.first * strides[0] + shift };
  });
  const colRanges = Array.from({ length: g.kernelWidth }, (_, kx) => {
    const shift = kx * dilations[1] - pads[1];
    const range = validOutputs(g.width, g.outWidth, strides[1], shift);
    return { ...range, input: range.first * strides[1] + shift };
  });
  const inPlane = g.height * g.width;
  const outPlane = g.outHeight * g.outWidth;
  for (let n = 0; n < g.batch; n++) {
    for (let o = 0; o < g.outChannels; o++) {
      const firstChannel = Math.floor(o / outPerGroup) * inPerGroup;
      const outOffset = (n * g.outChannels + o) * outPlane;
      for (let ci = 0; ci < inPerGroup; ci++) {
        const inOffset = (n * g.channels + firstChannel + ci) * inPlane;
        for (let ky = 0; ky < g.kernelHeight; ky++) {
          const rowsOf = rowRanges[ky];
          if (rowsOf.end === rowsOf.first) continue;
          for (let kx = 0; kx < g.kernelWidth; kx++) {
            const colsOf = colRanges[kx];
            if (colsOf.end === colsOf.first) continue;
            visit(
              inOffset + rowsOf.input * g.width + colsOf.input,
              outOffset + rowsOf.first * g.outWidth + colsOf.first,
              ((o * inPerGroup + ci) * g.kernelHeight + ky) * g.kernelWidth + kx,
              rowsOf.end - rowsOf.first,
              colsOf.end - colsOf.first,
            );
          }
        }
      }
    }
  }
}

/** Steps through one tap's rectangle: input row/column steps, output row step. */
function tapSteps(g: ConvGeometry): { xRow: number; xCol: number; yRow: number } {
  return { xRow: g.attrs.strides[0] * g.width, xCol: g.attrs.strides[1], yRow: g.outWidth };
}

export function conv2d(x: ReferenceTensor, w: ReferenceTensor, bias: ReferenceTensor | undefined, attrs: Conv2DAttrs): ReferenceTensor {
  const g = convGeometry('conv2d', x.shape, w.shape, attrs);
  const { xRow, xCol, yRow } = tapSteps(g);
  const plane = g.outHeight * g.outWidth;
  const y = new Float64Array(g.batch * g.outChannels * plane);
  if (bias) {
    if (bias.shape.length !== 1 || bias.shape[0] !== g.outChannels) {
      throw new Error(`conv2d: bias must be [${g.outChannels}] for filter ${formatShape(w.shape)}, got ${formatShape(bias.shape)}`);
    }
    for (let p = 0; p < g.batch * g.outChannels; p++) y.fill(bias.data[p % g.outChannels], p * plane, (p + 1) * plane);
  }
  forEachTap(g, (x0, y0, wIndex, rows, cols) => {
    const weight = w.data[wIndex];
    for (let r = 0; r < rows; r++) {
      const xi = x0 + r * xRow;
      const yi = y0 + r * yRow;
      for (let c = 0; c < cols; c++) y[yi + c] += weight * x.data[xi + c * xCol];
    }
  });
  return { shape: [g.batch, g.outChannels, g.outHeight, g.outWidth], data: y };
}

export function conv2dBackpropInput(dy: ReferenceTensor, w: ReferenceTensor, inputSize: Pair, attrs: Conv2DAttrs): ReferenceTensor {
  checkRank4('conv2dBackpropInput', 'output gradient', dy.shape);
  const inputShape = [dy.shape[0], w.shape[1] * attrs.groups, inputSize[0], inputSize[1]];
  const g = convGeometry('conv2dBackpropInput', inputShape, w.shape, attrs, dy.shape);
  const { xRow, xCol, yRow } = tapSteps(g);
  const dx = new Float64Array(g.batch * g.channels * g.height * g.width);
  forEachTap(g, (x0, y0, wIndex, rows, cols) => {
    const weight = w.data[wIndex];
    for (let r = 0; r < rows; r++) {
      const xi = x0 + r * xRow;
      const yi = y0 + r * yRow;
      for (let c = 0; c < cols; c++) dx[xi + c * xCol] += weight * dy.data[yi + c];
    }
  });
  return { shape: inputShape, data: dx };
}

export function conv2dBackpropFilter(
  x: ReferenceTensor,
  dy: ReferenceTensor,
  filterShape: readonly number[],
  attrs: Conv2DAttrs,
): ReferenceTensor {
  const g = convGeometry('conv2dBackpropFilter', x.shape, filterShape, attrs, dy.shape);
  const { xRow, xCol, yRow } = tapSteps(g);
  const dw = new Float64Array(sizeOf(filterShape));
  forEachTap(g, (x0, y0, wIndex, rows, cols) => {
    let total = 0;
    for (let r = 0; r < rows; r++) {
      const xi = x0 + r * xRow;
      const yi = y0 + r * yRow;
      for (let c = 0; c < cols; c++) total += x.data[xi + c * xCol] * dy.data[yi + c];
    }
    dw[wIndex] += total;
  });
  return { shape: [...filterShape], data: dw };
}

interface PoolGeometry {
  readonly batch: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly attrs: PoolAttrs;
}

function poolGeometry(kernel: string, input: readonly number[], attrs: PoolAttrs, output?: readonly number[]): PoolGeometry {
  checkRank4(kernel, 'input', input);
  const [batch, channels, height, width] = input;
  const { kernel: window, strides, pads } = attrs;
  const outHeight = windowedSize(height, window[0], strides[0], pads[0], pads[2]);
  const outWidth = windowedSize(width, window[1], strides[1], pads[1], pads[3]);
  if (outHeight < 1 || outWidth < 1) {
    throw new Error(`${kernel}: input ${formatShape(input)} is too small for a ${window.join('×')} window with pads [${pads.join(', ')}]`);
  }
  const expected = [batch, channels, outHeight, outWidth];
  if (output && expected.some((d, i) => d !== output[i])) {
    throw new Error(
      `${kernel}: output gradient ${formatShape(output)} does not match input ${formatShape(input)}; expected ${formatShape(expected)}`,
    );
  }
  return { batch, channels, height, width, outHeight, outWidth, attrs };
}

/**
 * Calls `visit` for every output (flat index) with the offset of its input plane and its window
 * clipped to the input, rows [top, bottom) × columns [left, right); padding holds nothing.
 */
function forEachWindow(
  g: PoolGeometry,
  kernel: string,
  visit: (out: number, plane: number, top: number, bottom: number, left: number, right: number) => void,
): void {
  const { kernel: window, strides, pads } = g.attrs;
  let out = 0;
  for (let p = 0; p < g.batch * g.channels; p++) {
    const plane = p * g.height * g.width;
    for (let oy = 0; oy < g.outHeight; oy++) {
      const y = oy * strides[0] - pads[0];
      const top = Math.max(0, y);
      const bottom = Math.min(g.height, y + window[0]);
      for (let ox = 0; ox < g.outWidth; ox++, out++) {
        const x = ox * strides[1] - pads[1];
        const left = Math.max(0, x);
        const right = Math.min(g.width, x + window[1]);
        if (bottom <= top || right <= left) {
          throw new Error(`${kernel}: window (${oy}, ${ox}) lies entirely in the padding [${pads.join(', ')}]`);
        }
        visit(out, plane, top, bottom, left, right);
      }
    }
  }
}

function outputCount(g: PoolGeometry): number {
  return g.batch * g.channels * g.outHeight * g.outWidth;
}

function pooledShape(g: PoolGeometry): number[] {
  return [g.batch, g.channels, g.outHeight, g.outWidth];
}

function avgDivisor(attrs: PoolAttrs, rows: number, cols: number): number {
  return attrs.countIncludePad ? attrs.kernel[0] * attrs.kernel[1] : rows * cols;
}

export function avgPool(x: ReferenceTensor, attrs: PoolAttrs): ReferenceTensor {
  const g = poolGeometry('avgPool', x.shape, attrs);
  const y = new Float64Array(outputCount(g));
  forEachWindow(g, 'avgPool', (out, plane, top, bottom, left, right) => {
    let total = 0;
    for (let r = top; r < bottom; r++) for (let c = left; c < right; c++) total += x.data[plane + r * g.width + c];
    y[out] = total / avgDivisor(attrs, bottom - top, right - left);
  });
  return { shape: pooledShape(g), data: y };
}

export function avgPoolBackprop(dy: ReferenceTensor, inputSize: Pair, attrs: PoolAttrs): ReferenceTensor {
  checkRank4('avgPoolBackprop', 'output gradient', dy.shape);
  const inputShape = [dy.shape[0], dy.shape[1], inputSize[0], inputSize[1]];
  const g = poolGeometry('avgPoolBackprop', inputShape, attrs, dy.shape);
  const dx = new Float64Array(g.batch * g.channels * g.height * g.width);
  forEachWindow(g, 'avgPoolBackprop', (out, plane, top, bottom, left, right) => {
    const share = dy.data[out] / avgDivisor(attrs, bottom - top, right - left);
    for (let r = top; r < bottom; r++) for (let c = left; c < right; c++) dx[plane + r * g.width + c] += share;
  });
  return { shape: inputShape, data: dx };
}

/**
 * Index in x of each window's first maximum in row-major order within the window: a later equal
 * value does not replace it. Padding acts as −∞, so it is never chosen.
 */
function firstMaxima(
  kernel: string,
  x: ReferenceTensor,
  attrs: PoolAttrs,
  output?: readonly number[],
): { g: PoolGeometry; at: Int32Array } {
  const g = poolGeometry(kernel, x.shape, attrs, output);
  const at = new Int32Array(outputCount(g));
  forEachWindow(g, kernel, (out, plane, top, bottom, left, right) => {
    let best = plane + top * g.width + left;
    for (let r = top; r < bottom; r++) {
      for (let c = left; c < right; c++) {
        const index = plane + r * g.width + c;
        if (x.data[index] > x.data[best]) best = index;
      }
    }
    at[out] = best;
  });
  return { g, at };
}

export function maxPool(x: ReferenceTensor, attrs: PoolAttrs): ReferenceTensor {
  const { g, at } = firstMaxima('maxPool', x, attrs);
  return { shape: pooledShape(g), data: Float64Array.from(at, (index) => x.data[index]) };
}

export function maxPoolJvp(x: ReferenceTensor, dx: ReferenceTensor, attrs: PoolAttrs): ReferenceTensor {
  if (!sameShape(dx.shape, x.shape)) {
    throw new Error(`maxPoolJvp: tangent ${formatShape(dx.shape)} must have the input's shape ${formatShape(x.shape)}`);
  }
  const { g, at } = firstMaxima('maxPoolJvp', x, attrs);
  return { shape: pooledShape(g), data: Float64Array.from(at, (index) => dx.data[index]) };
}

export function maxPoolBackprop(x: ReferenceTensor, dy: ReferenceTensor, attrs: PoolAttrs): ReferenceTensor {
  const { at } = firstMaxima('maxPoolBackprop', x, attrs, dy.shape);
  const dx = new Float64Array(x.data.length);
  for (let out = 0; out < at.length; out++) dx[at[out]] += dy.data[out];
  return { shape: x.shape, data: dx };
}
