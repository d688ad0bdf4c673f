import { type HostTensor, hostTensor, type OpType, type Pads4, type Pair, sizeOf, windowedSize } from '@gradfeat/core/engine';
import { type GraphBuilder, type KerasTensor, spatialTensor } from './builder.js';
import type { LayerConfig } from './config.js';
import { permuteAxes } from './weights.js';

/** What a layer converter sees: its config, its input tensors and the graph being built. */
export interface LayerContext {
  readonly name: string;
  readonly config: LayerConfig;
  readonly inputs: readonly KerasTensor[];
  readonly builder: GraphBuilder;
  /** The layer's weight (e.g. 'kernel') in Keras layout, checked against the shape its config implies. */
  weight(weightName: string, shape: readonly number[]): HostTensor;
  /** This layer's softmax is the model's last op: it is dropped so that the graph outputs logits. */
  readonly dropsSoftmax: boolean;
}

interface LayerConverter {
  readonly inputs: 'none' | 'one' | 'several';
  /**
   * The IR ops it may add besides the builder's LAYOUT_OPS: the importer refuses any other, so this
   * list is what the converter does. Empty for layers that only relabel their input.
   */
  readonly emits: readonly OpType[];
  convert(ctx: LayerContext): KerasTensor;
}

/** What the `activation` field of Conv2D, DepthwiseConv2D, Dense and Activation imports as. */
const FUSED_ACTIVATIONS: readonly OpType[] = ['ReLU', 'ReLU6'];

/** The Keras layer classes gradfeat imports, each lowered to the core op set. */
export const LAYER_CONVERTERS: Readonly<Record<string, LayerConverter>> = {
  InputLayer: { inputs: 'none', emits: [], convert: inputLayer },
  // A 1×1 convolution of a single pixel imports as Dense.
  Conv2D: { inputs: 'one', emits: ['Conv2D', 'Dense', ...FUSED_ACTIVATIONS], convert: conv2d },
  DepthwiseConv2D: { inputs: 'one', emits: ['Conv2D', ...FUSED_ACTIVATIONS], convert: depthwiseConv2d },
  Dense: { inputs: 'one', emits: ['Dense', ...FUSED_ACTIVATIONS], convert: dense },
  BatchNormalization: { inputs: 'one', emits: ['BatchNorm'], convert: batchNormalization },
  Activation: { inputs: 'one', emits: FUSED_ACTIVATIONS, convert: (ctx) => applyActivation(ctx, ctx.inputs[0], activationOf(ctx)) },
  ReLU: { inputs: 'one', emits: ['ReLU', 'ReLU6', 'LeakyReLU'], convert: (ctx) => applyActivation(ctx, ctx.inputs[0], reluOf(ctx.config)) },
  LeakyReLU: { inputs: 'one', emits: ['LeakyReLU'], convert: (ctx) => applyActivation(ctx, ctx.inputs[0], leakyReluOf(ctx.config)) },
  Softmax: { inputs: 'one', emits: [], convert: softmax },
  ZeroPadding2D: { inputs: 'one', emits: ['Pad'], convert: zeroPadding2d },
  MaxPooling2D: { inputs: 'one', emits: ['MaxPool'], convert: (ctx) => pooling(ctx, 'MaxPool') },
  AveragePooling2D: { inputs: 'one', emits: ['AvgPool'], convert: (ctx) => pooling(ctx, 'AvgPool') },
  GlobalAveragePooling2D: { inputs: 'one', emits: ['GlobalAvgPool'], convert: globalAveragePooling2d },
  Flatten: { inputs: 'one', emits: [], convert: (ctx) => relabel(ctx, ctx.inputs[0], [sizeOf(ctx.inputs[0].shape)]) },
  Reshape: { inputs: 'one', emits: [], convert: reshape },
  // Inference only: dropout is the identity.
  Dropout: { inputs: 'one', emits: [], convert: (ctx) => relabel(ctx, ctx.inputs[0], ctx.inputs[0].shape) },
  Add: { inputs: 'several', emits: ['Add'], convert: add },
  Concatenate: { inputs: 'several', emits: ['Concat'], convert: concatenate },
};

/**
 * The IR ops no Keras layer is imported as, each with the reason. With the converters' `emits` and
 * the builder's LAYOUT_OPS, it accounts for every op with rules: test/importer-coverage.test.ts fails
 * on an op added to the IR without either a converter that emits it or an entry here.
 */
export const NOT_IMPORTED_FROM_KERAS: Readonly<Partial<Record<OpType, string>>> = {
  Slice: 'no imported Keras layer slices or crops (Cropping2D is not supported)',
  Identity:
    'layers that compute nothing (Dropout, Flatten, Reshape, a linear activation, a dropped softmax) relabel their input instead of adding a node',
};

function describe(ctx: LayerContext): string {
  return `layer '${ctx.name}' (${ctx.config.layer.className})`;
}

/** The same IR value under this layer's name and a new Keras shape: reshapes move no data. */
function relabel(ctx: LayerContext, input: KerasTensor, shape: readonly number[]): KerasTensor {
  return { ...input, layer: ctx.name, shape };
}

function inputLayer(ctx: LayerContext): KerasTensor {
  const batchShape = ctx.config.raw('batch_input_shape') ?? ctx.config.raw('batch_shape');
  if (!Array.isArray(batchShape)) return ctx.config.fail("config field 'batch_input_shape' is missing");
  const shape: unknown[] = batchShape.slice(1);
  if (!shape.every((d) => Number.isSafeInteger(d) && (d as number) > 0)) {
    ctx.config.fail(
      `input shape ${JSON.stringify(batchShape)} has unknown sizes; gradfeat needs them fixed (TF "same" padding depends on them)`,
    );
  }
  const dims = shape as number[];
  if (dims.length === 3) {
    const tensor = spatialTensor(ctx.name, ctx.name, dims);
    ctx.builder.addInput(ctx.name, tensor.irShape);
    return tensor;
  }
  if (dims.length === 1) {
    ctx.builder.addInput(ctx.name, dims);
    return { layer: ctx.name, value: ctx.name, shape: dims, irShape: dims };
  }
  return ctx.config.fail(`input shape ${JSON.stringify(batchShape)}: gradfeat imports images [H, W, C] and vectors [F]`);
}

// ---- activations ----

type Elementwise =
  | { readonly op: 'ReLU' | 'ReLU6'; readonly attrs: Record<string, never> }
  | { readonly op: 'LeakyReLU'; readonly attrs: { alpha: number } };

const RELU: Elementwise = { op: 'ReLU', attrs: {} };
const RELU6: Elementwise = { op: 'ReLU6', attrs: {} };

/** The `activation` field of Activation, Conv2D, DepthwiseConv2D and Dense; undefined means none. */
function activationOf(ctx: LayerContext): Elementwise | undefined {
  const name = ctx.config.choice('activation', ['linear', 'relu', 'relu6', 'softmax'], 'linear');
  if (name === 'softmax') {
    dropFinalSoftmax(ctx);
    return undefined;
  }
  return name === 'relu' ? RELU : name === 'relu6' ? RELU6 : undefined;
}

function dropFinalSoftmax(ctx: LayerContext): void {
  if (!ctx.dropsSoftmax) {
    ctx.config.fail('softmax is supported only as the last op before the model output (it is dropped so that the graph outputs logits)');
  }
  ctx.builder.notes.push(`dropped the final softmax of layer '${ctx.name}': the graph outputs logits`);
}

function reluOf(config: LayerConfig): Elementwise {
  const maxValue = config.raw('max_value') ?? undefined;
  const slope = config.number('negative_slope', 0);
  if (config.number('threshold', 0) !== 0) config.fail(`config field 'threshold' is ${config.raw('threshold')}; gradfeat supports 0`);
  if (maxValue === undefined) return slope === 0 ? RELU : leakyRelu(config, slope);
  if (maxValue === 6 && slope === 0) return RELU6;
  return config.fail(
    `max_value ${JSON.stringify(maxValue)} with negative_slope ${slope}: gradfeat supports max_value 6 or none, and a negative slope only without max_value`,
  );
}

function leakyReluOf(config: LayerConfig): Elementwise {
  // Keras 2 calls the slope alpha, Keras 3 negative_slope.
  return leakyRelu(config, config.number('alpha', config.number('negative_slope', 0.3)));
}

function leakyRelu(config: LayerConfig, alpha: number): Elementwise {
  // The IR computes max(x, αx), which is LeakyReLU only for 0 ≤ α ≤ 1.
  if (alpha < 0 || alpha > 1) config.fail(`negative slope ${alpha} is outside [0, 1]`);
  return { op: 'LeakyReLU', attrs: { alpha } };
}

function applyActivation(ctx: LayerContext, input: KerasTensor, activation: Elementwise | undefined): KerasTensor {
  if (!activation) return relabel(ctx, input, input.shape);
  const value = ctx.builder.add(ctx.name, activation.op, [input.value], activation.attrs);
  return { ...input, layer: ctx.name, value };
}

/**
 * A layer with a fused activation: the linear op is the node named after the layer when there is no
 * activation, and `<layer>_linear` before the activation node otherwise.
 */
function withActivation(ctx: LayerContext, linear: (nodeName: string) => KerasTensor): KerasTensor {
  const activation = activationOf(ctx);
  if (!activation) return linear(ctx.name);
  return applyActivation(ctx, linear(ctx.builder.freshName(`${ctx.name}_linear`)), activation);
}

function softmax(ctx: LayerContext): KerasTensor {
  const axis = ctx.config.raw('axis') ?? -1;
  const rank = ctx.inputs[0].shape.length;
  if (axis !== -1 && axis !== rank)
    ctx.config.fail(`softmax over axis ${JSON.stringify(axis)}; gradfeat drops a final softmax over the last axis only`);
  dropFinalSoftmax(ctx);
  return relabel(ctx, ctx.inputs[0], ctx.inputs[0].shape);
}

// ---- convolutions and dense ----

function spatialShape(ctx: LayerContext, input: KerasTensor): [number, number, number] {
  if (input.shape.length !== 3)
    ctx.config.fail(`needs a spatial map [height, width, channels], got '${input.layer}' [${input.shape.join(', ')}]`);
  return [input.shape[0], input.shape[1], input.shape[2]];
}

/** Keras "valid" or TF "same" padding as explicit pads; TF puts the odd pixel at the bottom / right. */
function resolvePads(ctx: LayerContext, size: Pair, kernel: Pair, strides: Pair, dilations: Pair): Pads4 {
  const padding = ctx.config.choice('padding', ['valid', 'same'], 'valid');
  if (padding === 'valid') return [0, 0, 0, 0];
  const [top, bottom] = samePads(size[0], kernel[0], strides[0], dilations[0]);
  const [left, right] = samePads(size[1], kernel[1], strides[1], dilations[1]);
  return [top, left, bottom, right];
}

function samePads(size: number, kernel: number, stride: number, dilation: number): Pair {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

interface ConvGeometry {
  readonly kernel: Pair;
  readonly strides: Pair;
  readonly dilations: Pair;
  readonly groups: number;
}

/** Registers a layer's kernel and optional bias under `<layer>/<Keras weight name>`. */
function kernelParams(ctx: LayerContext, kernelName: string, weight: HostTensor, bias: HostTensor | undefined): Record<string, string> {
  const params: Record<string, string> = { weight: ctx.builder.addParam(`${ctx.name}/${kernelName}`, weight) };
  if (bias) params.bias = ctx.builder.addParam(`${ctx.name}/bias`, bias);
  return params;
}

/** A Conv2D node from an IR weight [out, in/groups, kh, kw]; the output is a spatial map. */
function convNode(
  ctx: LayerContext,
  nodeName: string,
  input: KerasTensor,
  kernelName: string,
  weight: HostTensor,
  bias: HostTensor | undefined,
  geometry: ConvGeometry,
): KerasTensor {
  const [h, w] = spatialShape(ctx, input);
  const { kernel, strides, dilations, groups } = geometry;
  const pads = resolvePads(ctx, [h, w], kernel, strides, dilations);
  const height = windowedSize(h, kernel[0], strides[0], pads[0], pads[2], dilations[0]);
  const width = windowedSize(w, kernel[1], strides[1], pads[1], pads[3], dilations[1]);
  if (height < 1 || width < 1) ctx.config.fail(`a ${kernel.join('×')} kernel does not fit the ${h}×${w} input`);
  const params = kernelParams(ctx, kernelName, weight, bias);
  const value = ctx.builder.add(nodeName, 'Conv2D', [ctx.builder.nchw(input, describe(ctx))], { strides, pads, dilations, groups }, params);
  return spatialTensor(ctx.name, value, [height, width, weight.shape[0]]);
}

/**
 * A Dense node from a Keras kernel [features, units]. When the input is a spatial map flattened
 * channels-last by Keras but held channels-first here, the kernel's rows are reordered to match.
 */
function denseNode(
  ctx: LayerContext,
  nodeName: string,
  input: KerasTensor,
  kernel: HostTensor,
  bias: HostTensor | undefined,
  shape: readonly number[],
): KerasTensor {
  const [features, units] = kernel.shape;
  const value = ctx.builder.features(input, describe(ctx));
  const weight = input.transposedFrom
    ? hostTensor([units, features], permuteAxes(hostTensor([...input.transposedFrom, units], kernel.data), [3, 2, 0, 1]).data)
    : permuteAxes(kernel, [1, 0]);
  const params = kernelParams(ctx, 'kernel', weight, bias);
  return { layer: ctx.name, value: ctx.builder.add(nodeName, 'Dense', [value], {}, params), shape, irShape: [units] };
}

function conv2d(ctx: LayerContext): KerasTensor {
  const { config } = ctx;
  config.channelsLast();
  const input = ctx.inputs[0];
  const [h, w, channels] = spatialShape(ctx, input);
  const filters = config.number('filters');
  const geometry = {
    kernel: config.pair('kernel_size'),
    strides: config.pair('strides', 1),
    dilations: config.pair('dilation_rate', 1),
    groups: config.number('groups', 1),
  };
  if (channels % geometry.groups !== 0) config.fail(`${channels} input channels do not split into ${geometry.groups} groups`);
  const [kh, kw] = geometry.kernel;
  const kernel = ctx.weight('kernel', [kh, kw, channels / geometry.groups, filters]);
  const bias = config.boolean('use_bias', true) ? ctx.weight('bias', [filters]) : undefined;
  if (kh === 1 && kw === 1 && h === 1 && w === 1 && geometry.groups === 1) {
    // A 1×1 convolution of a single pixel is a Dense layer (MobileNet's classifier): import it as one,
    // so that the network ends in the Dense classifier gradient features need.
    ctx.builder.notes.push(`layer '${ctx.name}': 1×1 convolution of a 1×1 map imported as a Dense layer`);
    return withActivation(ctx, (node) => denseNode(ctx, node, input, hostTensor([channels, filters], kernel.data), bias, [1, 1, filters]));
  }
  // [kh, kw, in, out] → [out, in, kh, kw]
  return withActivation(ctx, (node) => convNode(ctx, node, input, 'kernel', permuteAxes(kernel, [3, 2, 0, 1]), bias, geometry));
}

function depthwiseConv2d(ctx: LayerContext): KerasTensor {
  const { config } = ctx;
  config.channelsLast();
  const input = ctx.inputs[0];
  const [, , channels] = spatialShape(ctx, input);
  const multiplier = config.number('depth_multiplier', 1);
  const geometry = {
    kernel: config.pair('kernel_size'),
    strides: config.pair('strides', 1),
    dilations: config.pair('dilation_rate', 1),
    groups: channels,
  };
  const [kh, kw] = geometry.kernel;
  const kernel = ctx.weight('depthwise_kernel', [kh, kw, channels, multiplier]);
  const bias = config.boolean('use_bias', true) ? ctx.weight('bias', [channels * multiplier]) : undefined;
  // [kh, kw, in, multiplier] → [in·multiplier, 1, kh, kw]: output channel c·multiplier + m, as in TF.
  const weight = hostTensor([channels * multiplier, 1, kh, kw], permuteAxes(kernel, [2, 3, 0, 1]).data);
  return withActivation(ctx, (node) => convNode(ctx, node, input, 'depthwise_kernel', weight, bias, geometry));
}

function dense(ctx: LayerContext): KerasTensor {
  const input = ctx.inputs[0];
  const units = ctx.config.number('units');
  const features = input.shape[input.shape.length - 1];
  const kernel = ctx.weight('kernel', [features, units]);
  const bias = ctx.config.boolean('use_bias', true) ? ctx.weight('bias', [units]) : undefined;
  return withActivation(ctx, (node) => denseNode(ctx, node, input, kernel, bias, [...input.shape.slice(0, -1), units]));
}

// ---- normalisation, pooling, padding ----

/** Tensors that consumers agree on: NCHW spatial maps and plain vectors. */
function canonicalTensor(layer: string, value: string, shape: readonly number[]): KerasTensor {
  return shape.length === 3 ? spatialTensor(layer, value, shape) : { layer, value, shape, irShape: shape };
}

function batchNormalization(ctx: LayerContext): KerasTensor {
  const { config, builder } = ctx;
  const input = ctx.inputs[0];
  const rank = input.shape.length;
  const rawAxis = config.raw('axis') ?? -1;
  const axis = Array.isArray(rawAxis) && rawAxis.length === 1 ? rawAxis[0] : rawAxis;
  // Keras counts the batch axis: the channel axis of a per-sample rank-r tensor is r (or -1).
  if (axis !== -1 && axis !== rank) config.fail(`normalises axis ${JSON.stringify(rawAxis)}; gradfeat supports the channel (last) axis`);
  const channels = input.shape[rank - 1];
  const value = builder.canonical(input, describe(ctx));
  const role = (weightName: string, enabled: boolean, fill: number): string =>
    builder.addParam(
      `${ctx.name}/${weightName}`,
      enabled ? ctx.weight(weightName, [channels]) : hostTensor([channels], new Float32Array(channels).fill(fill)),
    );
  const params = {
    scale: role('gamma', config.boolean('scale', true), 1),
    bias: role('beta', config.boolean('center', true), 0),
    mean: role('moving_mean', true, 0),
    variance: role('moving_variance', true, 1),
  };
  const node = builder.add(ctx.name, 'BatchNorm', [value], { epsilon: config.number('epsilon', 1e-3) }, params);
  return canonicalTensor(ctx.name, node, input.shape);
}

function pooling(ctx: LayerContext, op: 'MaxPool' | 'AvgPool'): KerasTensor {
  const { config } = ctx;
  config.channelsLast();
  const input = ctx.inputs[0];
  const [h, w, channels] = spatialShape(ctx, input);
  const kernel = config.pair('pool_size', 2);
  const strides = config.pair('strides', kernel);
  const pads = resolvePads(ctx, [h, w], kernel, strides, [1, 1]);
  const height = windowedSize(h, kernel[0], strides[0], pads[0], pads[2]);
  const width = windowedSize(w, kernel[1], strides[1], pads[1], pads[3]);
  if (height < 1 || width < 1) config.fail(`a ${kernel.join('×')} window does not fit the ${h}×${w} input`);
  // TF averages over the pixels inside the image only.
  const attrs = op === 'AvgPool' ? { kernel, strides, pads, countIncludePad: false } : { kernel, strides, pads };
  const value = ctx.builder.add(ctx.name, op, [ctx.builder.nchw(input, describe(ctx))], attrs);
  return spatialTensor(ctx.name, value, [height, width, channels]);
}

function globalAveragePooling2d(ctx: LayerContext): KerasTensor {
  ctx.config.channelsLast();
  const input = ctx.inputs[0];
  const [, , channels] = spatialShape(ctx, input);
  const value = ctx.builder.add(ctx.name, 'GlobalAvgPool', [ctx.builder.nchw(input, describe(ctx))], {});
  // The IR keeps [C, 1, 1]; Keras drops the pixel axes unless keepdims.
  const shape = ctx.config.boolean('keepdims', false) ? [1, 1, channels] : [channels];
  return { layer: ctx.name, value, shape, irShape: [channels, 1, 1] };
}

function zeroPadding2d(ctx: LayerContext): KerasTensor {
  const { config } = ctx;
  config.channelsLast();
  const input = ctx.inputs[0];
  const [h, w, channels] = spatialShape(ctx, input);
  const [[top, bottom], [left, right]] = zeroPaddingOf(config);
  // IR pads cover the non-batch axes (C, H, W): begins, then ends.
  const value = ctx.builder.add(ctx.name, 'Pad', [ctx.builder.nchw(input, describe(ctx))], { pads: [0, top, left, 0, bottom, right] });
  return spatialTensor(ctx.name, value, [h + top + bottom, w + left + right, channels]);
}

/** Keras accepts p, [p_h, p_w] or [[top, bottom], [left, right]]. */
function zeroPaddingOf(config: LayerConfig): [Pair, Pair] {
  const padding = config.raw('padding') ?? 1;
  const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  if (isCount(padding))
    return [
      [padding, padding],
      [padding, padding],
    ];
  if (Array.isArray(padding) && padding.length === 2) {
    const [vertical, horizontal] = padding;
    if (isCount(vertical) && isCount(horizontal))
      return [
        [vertical, vertical],
        [horizontal, horizontal],
      ];
    const isPair = (v: unknown): v is Pair => Array.isArray(v) && v.length === 2 && v.every(isCount);
    if (isPair(vertical) && isPair(horizontal)) return [vertical, horizontal];
  }
  return config.fail(`config field 'padding' is ${JSON.stringify(padding)}; expected p, [p_h, p_w] or [[top, bottom], [left, right]]`);
}

// ---- structure ----

function reshape(ctx: LayerContext): KerasTensor {
  const input = ctx.inputs[0];
  const target = ctx.config.raw('target_shape');
  const total = sizeOf(input.shape);
  if (!Array.isArray(target) || !target.every((d) => Number.isSafeInteger(d) && (d > 0 || d === -1))) {
    return ctx.config.fail(`config field 'target_shape' is ${JSON.stringify(target)}; expected positive sizes and at most one -1`);
  }
  const known = sizeOf(target.filter((d) => d !== -1));
  const shape = target.map((d) => (d === -1 ? total / known : d));
  if (target.filter((d) => d === -1).length > 1 || sizeOf(shape) !== total || !shape.every(Number.isInteger)) {
    ctx.config.fail(`cannot reshape '${input.layer}' [${input.shape.join(', ')}] to [${target.join(', ')}]`);
  }
  return relabel(ctx, input, shape);
}

function sameInputShapes(ctx: LayerContext, exceptAxis?: number): readonly number[] {
  const [first, ...rest] = ctx.inputs.map((t) => t.shape);
  for (const shape of rest) {
    if (shape.length !== first.length || shape.some((d, i) => i !== exceptAxis && d !== first[i])) {
      ctx.config.fail(`input shapes ${ctx.inputs.map((t) => `'${t.layer}' [${t.shape.join(', ')}]`).join(', ')} do not match`);
    }
  }
  return first;
}

/** Keras Add takes any number of inputs; the IR's takes two, so longer sums become a chain. */
function add(ctx: LayerContext): KerasTensor {
  const shape = sameInputShapes(ctx);
  const values = ctx.inputs.map((t) => ctx.builder.canonical(t, describe(ctx)));
  let sum = values[0];
  for (let i = 1; i < values.length; i++) {
    const name = i === values.length - 1 ? ctx.name : ctx.builder.freshName(`${ctx.name}_partial`);
    sum = ctx.builder.add(name, 'Add', [sum, values[i]], {});
  }
  return canonicalTensor(ctx.name, sum, shape);
}

function concatenate(ctx: LayerContext): KerasTensor {
  const rank = ctx.inputs[0].shape.length;
  const kerasAxis = ctx.config.number('axis', -1);
  // Keras counts the batch axis; per-sample axis a of a channels-last map is IR axis [_, 2, 3, 1][a].
  const axis = kerasAxis < 0 ? kerasAxis + rank + 1 : kerasAxis;
  if (axis < 1 || axis > rank) ctx.config.fail(`axis ${kerasAxis} is not a non-batch axis of rank-${rank} inputs`);
  const shape = [...sameInputShapes(ctx, axis - 1)];
  shape[axis - 1] = ctx.inputs.reduce((total, t) => total + t.shape[axis - 1], 0);
  const values = ctx.inputs.map((t) => ctx.builder.canonical(t, describe(ctx)));
  const irAxis = rank === 3 ? [0, 2, 3, 1][axis] : axis;
  return canonicalTensor(ctx.name, ctx.builder.add(ctx.name, 'Concat', values, { axis: irAxis }), shape);
}
