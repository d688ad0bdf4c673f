import { formatShape, type OpAttrs, type OpType, type Pads4, type Pair, type Shape, windowedSize } from '@gradfeat/core/engine';
import { type ConstTensor, integers, normalizeAxis, resolveSliceRange, scalarValue, transposeConst } from './constant.js';
import { sliceParameters } from './fold.js';
import type { OnnxNode } from './proto.js';

/** A value computed from the network's input: its IR value name and static shape (batch as -1). */
export interface NetworkValue {
  readonly id: string;
  readonly shape: Shape;
}

/** A Dense node emitted without a bias, which a following Add of a constant may complete. */
export interface BiasFreeDense {
  readonly id: string;
  readonly outputs: number;
}

/** What a conversion rule sees of the importer. Its errors need not name the node; the importer adds it. */
export interface ConversionContext {
  readonly node: OnnxNode;
  hasInput(index: number): boolean;
  isConstant(index: number): boolean;
  /** Input `index` as a network value; fails if it is a constant or omitted. */
  value(index: number): NetworkValue;
  /** Input `index` as a constant that does not depend on the batch size. */
  constant(index: number, what: string): ConstTensor;
  optionalConstant(index: number, what: string): ConstTensor | undefined;
  /**
   * The batch sizes constants are folded at. A constant computed from the input's shape differs between
   * them, which is how a rule sees that a parameter names the batch (a Reshape target [N, -1]).
   */
  readonly batchProbes: readonly number[];
  /** Input `index` as folded at each of `batchProbes`; the rule decides what it can map. */
  constantPerBatch(index: number, what: string): readonly ConstTensor[];
  /** Emits the IR node computing the ONNX node's first output. */
  emit<O extends OpType>(op: O, inputs: readonly NetworkValue[], attrs: OpAttrs[O], params?: Readonly<Record<string, ConstTensor>>): void;
  /** The Dense node computing input `index`, when it has no bias and nothing else reads it. */
  biasFreeDense(index: number): BiasFreeDense | undefined;
  /** Gives `dense` a bias and makes it compute this node's output instead. */
  fuseBias(dense: BiasFreeDense, bias: ConstTensor): void;
}

export interface ConversionRule {
  /** Attributes the rule understands; any other one on the node is an error. */
  readonly attributes: readonly string[];
  /** The IR ops it may emit: the importer refuses any other, so this list is what the rule does. */
  readonly emits: readonly OpType[];
  convert(ctx: ConversionContext): void;
}

function expectRank(value: NetworkValue, rank: number, what: string): void {
  if (value.shape.length !== rank) throw new Error(`${what} must have rank ${rank}, got shape ${formatShape(value.shape)}`);
}

function pair(values: readonly number[], name: string): Pair {
  if (values.length !== 2) throw new Error(`attribute '${name}' must have 2 entries (height, width), got [${values.join(', ')}]`);
  return [values[0], values[1]];
}

/**
 * Spatial padding of a Conv or pooling window as IR [top, left, bottom, right]. ONNX's explicit pads
 * [h_begin, w_begin, h_end, w_end] are already in that order; auto_pad is resolved with the static
 * input size (SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning).
 */
function windowPads(node: OnnxNode, inputShape: Shape, kernel: Pair, strides: Pair, dilations: Pair): Pads4 {
  const autoPad = node.attributes.string('auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') {
    const pads = node.attributes.ints('pads') ?? [0, 0, 0, 0];
    if (pads.length !== 4 || pads.some((p) => p < 0))
      throw new Error(`attribute 'pads' must be 4 non-negative numbers, got [${pads.join(', ')}]`);
    return [pads[0], pads[1], pads[2], pads[3]];
  }
  if (autoPad === 'VALID') return [0, 0, 0, 0];
  if (autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') {
    throw new Error(`auto_pad '${autoPad}' is not supported; expected NOTSET, SAME_UPPER, SAME_LOWER or VALID`);
  }
  const [begin, end] = [0, 1].map((axis) => {
    const size = inputShape[axis + 2];
    const output = Math.ceil(size / strides[axis]);
    const total = Math.max(0, (output - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1 - size);
    const small = Math.floor(total / 2);
    return autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
  });
  return [begin[0], end[0], begin[1], end[1]];
}

function conv(ctx: ConversionContext): void {
  const x = ctx.value(0);
  expectRank(x, 4, 'the input (only 2-D convolutions on NCHW are supported)');
  const weight = ctx.constant(1, 'weight W');
  if (weight.shape.length !== 4) throw new Error(`weight W must be [out, in/group, kh, kw], got ${formatShape(weight.shape)}`);
  const kernel: Pair = [weight.shape[2], weight.shape[3]];
  const declared = ctx.node.attributes.ints('kernel_shape');
  if (declared && (declared[0] !== kernel[0] || declared[1] !== kernel[1])) {
    throw new Error(`kernel_shape [${declared.join(', ')}] does not match weight W ${formatShape(weight.shape)}`);
  }
  const strides = pair(ctx.node.attributes.ints('strides') ?? [1, 1], 'strides');
  const dilations = pair(ctx.node.attributes.ints('dilations') ?? [1, 1], 'dilations');
  const attrs = {
    strides,
    dilations,
    pads: windowPads(ctx.node, x.shape, kernel, strides, dilations),
    groups: ctx.node.attributes.int('group', 1),
  };
  const bias = ctx.optionalConstant(2, 'bias B');
  ctx.emit('Conv2D', [x], attrs, bias ? { weight, bias } : { weight });
}

function pool(op: 'MaxPool' | 'AvgPool') {
  return (ctx: ConversionContext): void => {
    const x = ctx.value(0);
    expectRank(x, 4, 'the input (only 2-D pooling on NCHW is supported)');
    const attributes = ctx.node.attributes;
    const kernelShape = attributes.ints('kernel_shape');
    if (!kernelShape) throw new Error("needs attribute 'kernel_shape'");
    const kernel = pair(kernelShape, 'kernel_shape');
    const strides = pair(attributes.ints('strides') ?? [1, 1], 'strides');
    const dilations = attributes.ints('dilations') ?? [1, 1];
    if (dilations.some((d) => d !== 1))
      throw new Error(`dilations [${dilations.join(', ')}] are not supported for pooling; expected [1, 1]`);
    const pads = windowPads(ctx.node, x.shape, kernel, strides, [1, 1]);
    if (attributes.int('ceil_mode', 0) === 1) {
      // The IR pools with floor rounding; ceil_mode is harmless when both round to the same size.
      [0, 1].forEach((axis) => {
        const padded = x.shape[axis + 2] + pads[axis] + pads[axis + 2] - kernel[axis];
        if (
          Math.ceil(padded / strides[axis]) + 1 !==
          windowedSize(x.shape[axis + 2], kernel[axis], strides[axis], pads[axis], pads[axis + 2])
        ) {
          throw new Error('ceil_mode=1 changes the output size here, which is not supported; export with ceil_mode=False');
        }
      });
    }
    const countIncludePad = op === 'AvgPool' ? attributes.int('count_include_pad', 0) === 1 : undefined;
    ctx.emit(op, [x], { kernel, strides, pads, ...(countIncludePad === undefined ? {} : { countIncludePad }) });
  };
}

/** A bias tensor that broadcasts over [N, length] per output: [length], [1, length], or a single value. */
function biasVector(bias: ConstTensor, length: number, what: string): ConstTensor {
  const perOutput = bias.data.length === length && bias.shape.slice(0, -1).every((d) => d === 1);
  if (!perOutput && bias.data.length !== 1) {
    throw new Error(`${what} of shape ${formatShape(bias.shape)} is not a per-output bias for ${length} outputs`);
  }
  return { kind: 'float', shape: [length], data: perOutput ? bias.data : new Float64Array(length).fill(bias.data[0]) };
}

function scaled(x: ConstTensor, factor: number): ConstTensor {
  return factor === 1 ? x : { ...x, data: x.data.map((v) => v * factor) };
}

function matrixInput(ctx: ConversionContext): NetworkValue {
  const x = ctx.value(0);
  expectRank(x, 2, 'input A (flatten to [N, features] first)');
  return x;
}

function gemm(ctx: ConversionContext): void {
  const attributes = ctx.node.attributes;
  if (attributes.int('transA', 0) !== 0) throw new Error('transA=1 is not supported: A holds the batch and must be [N, K]');
  const x = matrixInput(ctx);
  const b = ctx.constant(1, 'B');
  if (b.shape.length !== 2) throw new Error(`B must be a matrix, got ${formatShape(b.shape)}`);
  // The IR's Dense weight is [out, in], which is B itself under transB=1 (PyTorch's nn.Linear).
  const weight = scaled(attributes.int('transB', 0) === 1 ? b : transposeConst(b, [1, 0]), attributes.float('alpha', 1));
  const c = ctx.optionalConstant(2, 'C');
  const params: Record<string, ConstTensor> = { weight };
  if (c) params.bias = scaled(biasVector(c, weight.shape[0], 'C'), attributes.float('beta', 1));
  ctx.emit('Dense', [x], {}, params);
}

function matMul(ctx: ConversionContext): void {
  const x = matrixInput(ctx);
  const b = ctx.constant(1, 'B');
  if (b.shape.length !== 2) throw new Error(`B must be a matrix [in, out], got ${formatShape(b.shape)}`);
  ctx.emit('Dense', [x], {}, { weight: transposeConst(b, [1, 0]) });
}

function add(ctx: ConversionContext): void {
  if (!ctx.isConstant(0) && !ctx.isConstant(1)) {
    ctx.emit('Add', [ctx.value(0), ctx.value(1)], {});
    return;
  }
  const [valueIndex, biasIndex] = ctx.isConstant(0) ? [1, 0] : [0, 1];
  const dense = ctx.biasFreeDense(valueIndex);
  if (!dense) {
    throw new Error(
      `input '${ctx.node.inputs[biasIndex]}' is a constant; adding a constant is supported only as the bias right after MatMul or Gemm`,
    );
  }
  ctx.fuseBias(dense, biasVector(ctx.constant(biasIndex, 'bias'), dense.outputs, 'the added bias'));
}

/** Clip(0, 6) is ReLU6 and Clip(0, ∞) is ReLU; bounds are attributes before opset 11, inputs since. */
function clip(ctx: ConversionContext): void {
  const bound = (index: number, attribute: string, fallback: number) => {
    const input = ctx.optionalConstant(index, attribute);
    return input ? scalarValue(input, attribute) : ctx.node.attributes.float(attribute, fallback);
  };
  const min = bound(1, 'min', Number.NEGATIVE_INFINITY);
  const max = bound(2, 'max', Number.POSITIVE_INFINITY);
  if (min === 0 && max === 6) ctx.emit('ReLU6', [ctx.value(0)], {});
  else if (min === 0 && max === Number.POSITIVE_INFINITY) ctx.emit('ReLU', [ctx.value(0)], {});
  else throw new Error(`Clip(min=${min}, max=${max}) is not supported; only Clip(0, 6) (ReLU6) and Clip(0, ∞) (ReLU) are`);
}

/**
 * ONNX Reshape target → IR per-sample shape. Its first entry must be the batch: 0 (copy), -1 (infer)
 * or a value computed from the input's batch size, which the probes reveal.
 */
function reshape(ctx: ConversionContext): void {
  const x = ctx.value(0);
  const allowZero = ctx.node.attributes.int('allowzero', 0) === 1;
  const targets = ctx.constantPerBatch(1, 'shape');
  const perSample = ctx.batchProbes.map((batch, probe) => {
    const target = integers(targets[probe], 'shape');
    const first = target[0];
    if (!(first === batch || first === -1 || (first === 0 && !allowZero))) {
      throw new Error(
        `target shape [${target.join(', ')}] fixes the batch dimension to ${first}; gradfeat keeps the batch free (export with a dynamic batch axis, or use -1)`,
      );
    }
    const rest = target.slice(1).map((d, i) => (d === 0 && !allowZero ? x.shape[i + 1] : d));
    if (first === -1 && rest.includes(-1)) throw new Error(`target shape [${target.join(', ')}] infers two dimensions`);
    return rest;
  });
  if (perSample.some((shape) => shape.join() !== perSample[0].join())) {
    throw new Error(
      `target shape depends on the batch size beyond its first entry: ${perSample.map((s) => `[N, ${s.join(', ')}]`).join(' vs ')}`,
    );
  }
  ctx.emit('Reshape', [x], { shape: perSample[0] });
}

function flatten(ctx: ConversionContext): void {
  const x = ctx.value(0);
  const axis = normalizeAxis(ctx.node.attributes.int('axis', 1), x.shape.length + 1, 'axis');
  if (axis !== 1) throw new Error(`axis ${axis} is not supported; only axis 1 (keep the batch, flatten the rest) maps to the IR`);
  ctx.emit('Flatten', [x], {});
}

/** Pad's pads (and axes): attributes before opset 11, inputs since; only zero constant padding. */
function pad(ctx: ConversionContext): void {
  const x = ctx.value(0);
  const mode = ctx.node.attributes.string('mode', 'constant');
  if (mode !== 'constant') throw new Error(`mode '${mode}' is not supported; expected 'constant'`);
  const fill = ctx.optionalConstant(2, 'constant_value');
  const value = fill ? scalarValue(fill, 'constant_value') : ctx.node.attributes.float('value', 0);
  if (value !== 0) throw new Error(`padding value ${value} is not supported; expected 0`);
  const padsInput = ctx.optionalConstant(1, 'pads');
  const pads = padsInput ? integers(padsInput, 'pads') : ctx.node.attributes.ints('pads');
  if (!pads) throw new Error("needs 'pads'");
  const rank = x.shape.length;
  const axesInput = ctx.optionalConstant(3, 'axes');
  const axes = axesInput ? integers(axesInput, 'axes').map((a) => normalizeAxis(a, rank, 'pad axis')) : x.shape.map((_, i) => i);
  if (pads.length !== 2 * axes.length) throw new Error(`pads [${pads.join(', ')}] must have ${2 * axes.length} entries (begins then ends)`);
  const begins = new Array<number>(rank).fill(0);
  const ends = new Array<number>(rank).fill(0);
  axes.forEach((axis, i) => {
    begins[axis] = pads[i];
    ends[axis] = pads[i + axes.length];
  });
  if (begins[0] !== 0 || ends[0] !== 0) throw new Error(`pads [${pads.join(', ')}] pad the batch axis, which is not supported`);
  if ([...begins, ...ends].some((p) => p < 0)) throw new Error(`negative pads [${pads.join(', ')}] (cropping) are not supported`);
  ctx.emit('Pad', [x], { pads: [...begins.slice(1), ...ends.slice(1)] });
}

const SLICE_INPUTS = ['data', 'starts', 'ends', 'axes', 'steps'];

/**
 * ONNX Slice → IR begins/ends/steps over the non-batch axes, resolved at each probe batch size: the
 * batch axis must come out whole (e.g. ends = INT64_MAX or N), every other axis the same at each probe.
 */
function slice(ctx: ConversionContext): void {
  const x = ctx.value(0);
  const probeInputs = ctx.node.inputs.map((_, i) => (i > 0 && ctx.hasInput(i) ? ctx.constantPerBatch(i, SLICE_INPUTS[i]) : undefined));
  const resolved = ctx.batchProbes.map((batch, probe) => {
    const shape = [batch, ...x.shape.slice(1)];
    const parameters = sliceParameters(
      ctx.node,
      probeInputs.map((p) => p?.[probe]),
      shape.length,
    );
    const ranges = shape.map((size) => resolveSliceRange(size, 0, size, 1));
    parameters.axes.forEach((axis, i) => {
      ranges[axis] = resolveSliceRange(shape[axis], parameters.starts[i], parameters.ends[i], parameters.steps[i]);
    });
    const [batchRange, ...rest] = ranges;
    if (batchRange.start !== 0 || batchRange.step !== 1 || batchRange.count !== batch)
      throw new Error('slicing the batch axis is not supported');
    return rest;
  });
  const ranges = resolved[0];
  if (resolved.some((r) => JSON.stringify(r) !== JSON.stringify(ranges))) throw new Error('slice parameters depend on the batch size');
  ranges.forEach((r, i) => {
    if (r.step < 1) throw new Error(`axis ${i + 1}: negative steps (${r.step}) are not supported`);
    if (r.count === 0) throw new Error(`axis ${i + 1} of size ${x.shape[i + 1]} is sliced to nothing`);
  });
  ctx.emit('Slice', [x], {
    begins: ranges.map((r) => r.start),
    ends: ranges.map((r) => r.end),
    steps: ranges.map((r) => r.step),
  });
}

function concat(ctx: ConversionContext): void {
  const parts = ctx.node.inputs.map((_, i) => ctx.value(i));
  const axis = normalizeAxis(ctx.node.attributes.int('axis'), parts[0].shape.length, 'axis');
  if (axis === 0) throw new Error('concatenating along the batch axis is not supported');
  ctx.emit('Concat', parts, { axis });
}

function dropout(ctx: ConversionContext): void {
  const training = ctx.optionalConstant(2, 'training_mode');
  if (training && scalarValue(training, 'training_mode') !== 0) throw new Error('training_mode=true is not supported; export in eval mode');
  ctx.emit('Identity', [ctx.value(0)], {});
}

function batchNormalization(ctx: ConversionContext): void {
  const attributes = ctx.node.attributes;
  if (attributes.int('training_mode', 0) !== 0) throw new Error('training_mode=1 is not supported; export in eval mode');
  if (attributes.int('spatial', 1) !== 1) throw new Error('spatial=0 (per-activation statistics) is not supported');
  ctx.emit(
    'BatchNorm',
    [ctx.value(0)],
    { epsilon: attributes.float('epsilon', 1e-5) },
    {
      scale: ctx.constant(1, 'scale'),
      bias: ctx.constant(2, 'B'),
      mean: ctx.constant(3, 'input_mean'),
      variance: ctx.constant(4, 'input_var'),
    },
  );
}

function leakyRelu(ctx: ConversionContext): void {
  const alpha = ctx.node.attributes.float('alpha', 0.01);
  if (alpha < 0 || alpha > 1) throw new Error(`alpha ${alpha} is not supported; gradfeat's LeakyReLU needs 0 ≤ alpha ≤ 1`);
  ctx.emit('LeakyReLU', [ctx.value(0)], { alpha });
}

function globalAveragePool(ctx: ConversionContext): void {
  const x = ctx.value(0);
  expectRank(x, 4, 'the input');
  ctx.emit('GlobalAvgPool', [x], {});
}

/** ONNX op → IR. Shape computations over constants are folded before these rules are consulted. */
export const CONVERSION_RULES: Readonly<Record<string, ConversionRule>> = {
  Conv: { attributes: ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'], emits: ['Conv2D'], convert: conv },
  BatchNormalization: {
    attributes: ['epsilon', 'momentum', 'spatial', 'training_mode'],
    emits: ['BatchNorm'],
    convert: batchNormalization,
  },
  Relu: { attributes: [], emits: ['ReLU'], convert: (ctx) => ctx.emit('ReLU', [ctx.value(0)], {}) },
  Clip: { attributes: ['min', 'max'], emits: ['ReLU6', 'ReLU'], convert: clip },
  LeakyRelu: { attributes: ['alpha'], emits: ['LeakyReLU'], convert: leakyRelu },
  MaxPool: {
    attributes: ['auto_pad', 'ceil_mode', 'dilations', 'kernel_shape', 'pads', 'storage_order', 'strides'],
    emits: ['MaxPool'],
    convert: pool('MaxPool'),
  },
  AveragePool: {
    attributes: ['auto_pad', 'ceil_mode', 'count_include_pad', 'dilations', 'kernel_shape', 'pads', 'strides'],
    emits: ['AvgPool'],
    convert: pool('AvgPool'),
  },
  GlobalAveragePool: { attributes: [], emits: ['GlobalAvgPool'], convert: globalAveragePool },
  // Of a constant, Add is the bias of the Dense before it, which it completes without a node.
  Add: { attributes: [], emits: ['Add'], convert: add },
  Flatten: { attributes: ['axis'], emits: ['Flatten'], convert: flatten },
  Reshape: { attributes: ['allowzero'], emits: ['Reshape'], convert: reshape },
  Gemm: { attributes: ['alpha', 'beta', 'transA', 'transB'], emits: ['Dense'], convert: gemm },
  MatMul: { attributes: [], emits: ['Dense'], convert: matMul },
  Pad: { attributes: ['mode', 'pads', 'value'], emits: ['Pad'], convert: pad },
  Slice: { attributes: ['starts', 'ends', 'axes'], emits: ['Slice'], convert: slice },
  Concat: { attributes: ['axis'], emits: ['Concat'], convert: concat },
  Dropout: { attributes: ['ratio', 'seed', 'is_test'], emits: ['Identity'], convert: dropout },
  Identity: { attributes: [], emits: ['Identity'], convert: (ctx) => ctx.emit('Identity', [ctx.value(0)], {}) },
};

/**
 * The IR ops no ONNX op is imported as, each with the reason. With the rules' `emits`, it accounts
 * for every op with rules: test/importer-coverage.test.ts fails on an op added to the IR without
 * either a rule that emits it or an entry here.
 */
export const NOT_IMPORTED_FROM_ONNX: Readonly<Partial<Record<OpType, string>>> = {};
