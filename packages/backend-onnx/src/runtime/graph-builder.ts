import {
  BATCH,
  type Conv2DAttrs,
  type HostTensor,
  hostTensor,
  type Kernels,
  type Pair,
  type PoolAttrs,
  sameShape,
} from '@gradfeat/core/engine';
import { BlockedLayout } from './blocked-layout.js';
import {
  type ConvGeometry,
  convAttributes,
  convGeometry,
  expectConvOutput,
  expectRank4,
  poolAttributes,
  pooledShape,
  tapIndices,
  transposedConvRemainder,
  windowReciprocals,
} from './conv-geometry.js';
import type { LoweringOptions } from './lowering-options.js';
import { OnnxGraph } from './onnx-graph.js';
import { type AttributeProto, attribute, FLOAT_DATA_TYPE, floatTensorProto, int64TensorProto, type ModelContents } from './proto.js';
import { broadcastShapes, describeShape, normalizeAxes, resolveReshape } from './symbolic-shape.js';

/** A value of the graph being traced: its static shape (-1 for the batch axis). */
export interface SymbolicTensor {
  readonly shape: readonly number[];
}

/**
 * Where one value lives: plain NCHW (row-major in its logical shape), NCHWc blocked, or channels-last
 * NHWC. A value holds at least one; the others are made from it on first use, once.
 */
interface Layouts {
  plain?: string;
  blocked?: string;
  channelsLast?: string;
}

/** Slice ends at least this large mean "to the end of the axis" (core writes Number.MAX_SAFE_INTEGER). */
const TO_THE_END = 2 ** 31 - 1;

/** Output pixels per image up to which a whole im2col matrix is built for a filter gradient (else one tap at a time). */
const SMALL_IMAGE = 256;

/** Values of a filter gradient (O × kh·kw·C) up to which its long GEMM is split into chunks (see rowSum). */
const SMALL_PRODUCT = 2 ** 17;

/** One input channel per group: a depthwise conv (with a channel multiplier when outPerGroup > 1). */
function isDepthwise(geometry: ConvGeometry): boolean {
  return geometry.attrs.groups > 1 && geometry.inPerGroup === 1;
}

/**
 * Records kernel calls as an ONNX graph instead of running them. Every value's static shape is
 * tracked so that errors surface while tracing, at the kernel that caused them, rather than as an
 * ONNX Runtime failure at run time. With an NCHWc block size, convolutions (constant or run-time
 * filters) run on ONNX Runtime's blocked layout and values stay in it between ops that allow it.
 */
export class OnnxGraphBuilder implements Kernels<SymbolicTensor> {
  private readonly graph = new OnnxGraph();
  private readonly layouts = new WeakMap<SymbolicTensor, Layouts>();
  private readonly blocked?: BlockedLayout;
  private readonly constants = new Map<HostTensor, SymbolicTensor>();
  private readonly scalars = new Map<number, SymbolicTensor>();
  /** Constants whose values are all one number, with that number. */
  private readonly uniformConstants = new Map<SymbolicTensor, number>();
  /** Values not written out yet: `small` broadcast to the value's shape, which `write` produces. */
  private readonly broadcasts = new Map<SymbolicTensor, { small: SymbolicTensor; write: () => SymbolicTensor }>();
  private readonly maxPoolIndices = new Map<string, string>();
  /** im2col matrices by input value and conv geometry: a conv with a run-time filter and its filter gradient share one. */
  private readonly columnMatrices = new Map<string, string>();

  constructor(options: LoweringOptions = {}) {
    if (options.nchwcBlockSize !== undefined) this.blocked = new BlockedLayout(this.graph, options.nchwcBlockSize);
  }

  input(name: string, shape: readonly number[]): SymbolicTensor {
    this.graph.addInput(name, shape);
    return this.value(shape, { plain: name });
  }

  /** Makes `value` a graph output; returns the ONNX name, which is `name` unless that is taken. */
  output(name: string, value: SymbolicTensor): string {
    return this.graph.addOutput(name, this.plain(value), value.shape);
  }

  encode(model: Pick<ModelContents, 'graphName' | 'docString' | 'metadata'>): Uint8Array {
    return this.graph.encode(model);
  }

  // ---- kernels ----

  shape(x: SymbolicTensor): readonly number[] {
    this.layoutsOf(x);
    return x.shape;
  }

  constant(value: HostTensor): SymbolicTensor {
    let handle = this.constants.get(value);
    if (!handle) {
      handle = this.value(value.shape, { plain: this.graph.initializer(floatTensorProto(this.graph.freshName('const'), value)) });
      this.constants.set(value, handle);
      if (value.data.length > 1 && value.data.every((v) => v === value.data[0])) this.uniformConstants.set(handle, value.data[0]);
    }
    return handle;
  }

  scalar(value: number): SymbolicTensor {
    let handle = this.scalars.get(value);
    if (!handle) {
      handle = this.value([], { plain: this.graph.floatScalar(value) });
      this.scalars.set(value, handle);
    }
    return handle;
  }

  add(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Add', [a, b]);
  }
  sub(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Sub', [a, b]);
  }
  mul(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Mul', [a, b]);
  }
  div(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Div', [a, b]);
  }
  maximum(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.clipped(a, b, 'min') ?? this.clipped(b, a, 'min') ?? this.elementwise('Max', [a, b]);
  }
  minimum(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.clipped(a, b, 'max') ?? this.clipped(b, a, 'max') ?? this.elementwise('Min', [a, b]);
  }
  greater(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Greater', [a, b]);
  }
  less(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Less', [a, b]);
  }
  exp(x: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Exp', [x]);
  }
  log(x: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Log', [x]);
  }
  abs(x: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Abs', [x]);
  }
  sqrt(x: SymbolicTensor): SymbolicTensor {
    return this.elementwise('Sqrt', [x]);
  }

  /** max(x, s) or min(x, s) with a scalar s as Clip, which ONNX Runtime runs faster than a broadcasting Max or Min; in x's layout. */
  private clipped(x: SymbolicTensor, bound: SymbolicTensor, side: 'min' | 'max'): SymbolicTensor | undefined {
    if (bound.shape.length !== 0 || x.shape.length === 0) return undefined;
    const limits = side === 'min' ? [this.plain(bound), ''] : ['', this.plain(bound)];
    const layouts = this.layoutsOf(x);
    if (layouts.plain === undefined && layouts.blocked !== undefined) {
      return this.value(x.shape, { blocked: this.graph.node('Clip', [layouts.blocked, ...limits]) });
    }
    return this.value(x.shape, { plain: this.graph.node('Clip', [this.plain(x), ...limits]) });
  }

  sum(x: SymbolicTensor, axes: readonly number[], keepDims: boolean): SymbolicTensor {
    return this.reduce('ReduceSum', x, axes, keepDims);
  }
  max(x: SymbolicTensor, axes: readonly number[], keepDims: boolean): SymbolicTensor {
    return this.reduce('ReduceMax', x, axes, keepDims);
  }

  reshape(x: SymbolicTensor, shape: readonly number[]): SymbolicTensor {
    const target = resolveReshape(x.shape, shape);
    if (sameShape(target, x.shape)) return x;
    return this.plainNode('Reshape', [x], target, [], [this.int64s(target)]);
  }

  transpose(x: SymbolicTensor, perm: readonly number[]): SymbolicTensor {
    const rank = x.shape.length;
    if (perm.length !== rank || [...perm].sort((p, q) => p - q).some((axis, i) => axis !== i)) {
      throw new Error(`[${perm.join(', ')}] is not a permutation of the ${rank} axes of ${describeShape(x.shape)}`);
    }
    if (perm.every((axis, i) => axis === i)) return x;
    return this.plainNode(
      'Transpose',
      [x],
      perm.map((axis) => x.shape[axis]),
      [attribute.ints('perm', perm)],
    );
  }

  pad(x: SymbolicTensor, pads: readonly number[]): SymbolicTensor {
    const rank = x.shape.length;
    if (pads.length !== 2 * rank || pads.some((p) => !Number.isInteger(p) || p < 0)) {
      throw new Error(
        `pads must be ${2 * rank} non-negative integers (begins then ends) for ${describeShape(x.shape)}, got [${pads.join(', ')}]`,
      );
    }
    if (pads.every((p) => p === 0)) return x;
    const shape = x.shape.map((d, axis) => {
      const added = pads[axis] + pads[axis + rank];
      if (d === BATCH && added > 0) throw new Error(`cannot pad the batch axis ${axis} of ${describeShape(x.shape)}`);
      return d === BATCH ? d : d + added;
    });
    return this.plainNode('Pad', [x], shape, [], [this.int64s(pads)]);
  }

  slice(x: SymbolicTensor, begins: readonly number[], ends: readonly number[], steps: readonly number[]): SymbolicTensor {
    const rank = x.shape.length;
    if (begins.length !== rank || ends.length !== rank || steps.length !== rank) {
      throw new Error(`begins, ends and steps need one entry per axis of ${describeShape(x.shape)}`);
    }
    const axes: number[] = [];
    const shape = [...x.shape];
    x.shape.forEach((size, axis) => {
      const [begin, end, step] = [begins[axis], ends[axis], steps[axis]];
      const whole = begin === 0 && step === 1 && (end >= TO_THE_END || (size !== BATCH && end >= size));
      if (whole) return;
      if (size === BATCH) throw new Error(`axis ${axis} of ${describeShape(x.shape)} is the batch axis, which can only be sliced whole`);
      const stop = Math.min(end, size);
      if (!Number.isInteger(begin) || begin < 0 || stop <= begin || !Number.isInteger(step) || step < 1) {
        throw new Error(`axis ${axis} of size ${size} cannot be sliced from ${begin} to ${end} by ${step}`);
      }
      axes.push(axis);
      shape[axis] = Math.ceil((stop - begin) / step);
    });
    if (axes.length === 0) return x;
    const starts = axes.map((axis) => begins[axis]);
    const stops = axes.map((axis) => Math.min(ends[axis], x.shape[axis]));
    const strides = axes.map((axis) => steps[axis]);
    return this.plainNode('Slice', [x], shape, [], [this.int64s(starts), this.int64s(stops), this.int64s(axes), this.int64s(strides)]);
  }

  concat(xs: readonly SymbolicTensor[], axis: number): SymbolicTensor {
    if (xs.length === 0) throw new Error('concat needs at least one tensor');
    const first = xs[0].shape;
    const [along] = normalizeAxes([axis], first.length, 'concat');
    for (const x of xs) {
      if (x.shape.length !== first.length || x.shape.some((d, i) => i !== along && d !== first[i])) {
        throw new Error(`shapes ${xs.map((t) => describeShape(t.shape)).join(', ')} differ outside axis ${along}`);
      }
      if (x.shape[along] === BATCH) throw new Error(`cannot concatenate along the batch axis ${along}`);
    }
    if (xs.length === 1) return xs[0];
    const shape = [...first];
    shape[along] = xs.reduce((total, x) => total + x.shape[along], 0);
    return this.plainNode('Concat', xs, shape, [attribute.int('axis', along)]);
  }

  matMul(a: SymbolicTensor, b: SymbolicTensor, transposeA: boolean, transposeB: boolean): SymbolicTensor {
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      throw new Error(`matMul takes 2-D operands, got ${describeShape(a.shape)} and ${describeShape(b.shape)}`);
    }
    const [rows, inner] = transposeA ? [a.shape[1], a.shape[0]] : a.shape;
    const [innerB, columns] = transposeB ? [b.shape[1], b.shape[0]] : b.shape;
    if (inner !== innerB) {
      throw new Error(
        `matMul: ${describeShape(a.shape)}${transposeA ? 'ᵀ' : ''} · ${describeShape(b.shape)}${transposeB ? 'ᵀ' : ''} have inner sizes ${inner} and ${innerB}`,
      );
    }
    return this.plainNode(
      'Gemm',
      [a, b],
      [rows, columns],
      [attribute.int('transA', transposeA ? 1 : 0), attribute.int('transB', transposeB ? 1 : 0)],
    );
  }

  /**
   * With an NCHWc block size, every conv whose channels fill whole blocks runs as ONNX Runtime's
   * NCHWc Conv, whatever its filter. Otherwise a constant filter or a large image takes ONNX
   * Runtime's Conv (which reorders constant filters into NCHWc itself), and a filter computed at run
   * time (the tangent's Ẇ, or θ2 while fine-tuning) on a small image one GEMM over an im2col matrix
   * of the whole batch, several times faster than ONNX Runtime's per-image GEMMs only Ho·Wo wide.
   */
  conv2d(x: SymbolicTensor, w: SymbolicTensor, bias: SymbolicTensor | undefined, attrs: Conv2DAttrs): SymbolicTensor {
    const geometry = convGeometry(x.shape, w.shape, attrs);
    const { outChannels, outputSize } = geometry;
    if (bias && !sameShape(bias.shape, [outChannels])) throw new Error(`bias must be [${outChannels}], got ${describeShape(bias.shape)}`);
    const shape = [geometry.batch, outChannels, ...outputSize];
    const algorithm = this.blocked?.algorithm(geometry);
    if (this.blocked && algorithm) {
      const input = algorithm === 'plain' ? this.plain(x) : this.blockedName(x);
      return this.value(shape, {
        blocked: this.blocked.conv(input, this.plain(w), bias && this.plain(bias), geometry, algorithm),
      });
    }
    // A depthwise filter has only kh·kw values per channel: per-channel GEMMs would be all overhead.
    if (this.graph.isConstant(this.plain(w)) || outputSize[0] * outputSize[1] > SMALL_IMAGE || isDepthwise(geometry)) {
      return this.plainNode('Conv', bias ? [x, w, bias] : [x, w], shape, convAttributes(geometry.kernel, attrs));
    }
    if (attrs.groups > 1)
      return this.perGroup(geometry, (group) => this.conv2d(group.x(x), group.filter(w), group.bias(bias), group.attrs));
    // y [N·Ho·Wo, O] = columns [N·Ho·Wo, kh·kw·C] · W as [O, kh·kw·C] (tap-major like the columns), bias fused.
    const [kh, kw] = geometry.kernel;
    const filterRows = this.graph.node('Reshape', [
      this.graph.node(
        'Transpose',
        [this.graph.node('Reshape', [this.plain(w), this.int64s([outChannels, geometry.inChannels, kh * kw])])],
        { attributes: [attribute.ints('perm', [0, 2, 1])] },
      ),
      this.int64s([outChannels, -1]),
    ]);
    const product = this.graph.node('Gemm', [this.columns(x, geometry), filterRows, ...(bias ? [this.plain(bias)] : [])], {
      attributes: [attribute.int('transB', 1)],
    });
    const channelsLast = this.graph.node('Reshape', [product, this.int64s([-1, ...outputSize, outChannels])]);
    return this.value(shape, { channelsLast });
  }

  /**
   * With stride 1 the transpose of a conv is the conv of dy with the filter flipped and its in and
   * out channels swapped, which runs as fast as any conv (its filter folded once when constant).
   * Strided convs take ConvTranspose.
   */
  conv2dBackpropInput(dy: SymbolicTensor, w: SymbolicTensor, inputSize: Pair, attrs: Conv2DAttrs): SymbolicTensor {
    const [n, o, ho, wo] = expectRank4(dy.shape, 'dy');
    const geometry = convGeometry([n, w.shape[1] * attrs.groups, ...inputSize], w.shape, attrs);
    if (o !== geometry.outChannels) {
      throw new Error(
        `dy ${describeShape(dy.shape)} has ${o} channels but the filter ${describeShape(w.shape)} has ${geometry.outChannels} outputs`,
      );
    }
    expectConvOutput([ho, wo], inputSize, geometry.kernel, attrs);
    const [kh, kw] = geometry.kernel;
    const { groups, dilations, pads } = attrs;
    const flippedPads = [0, 1, 2, 3].map((i) => dilations[i % 2] * (geometry.kernel[i % 2] - 1) - pads[i]);
    if (attrs.strides.some((s) => s !== 1) || flippedPads.some((p) => p < 0)) {
      return this.plainNode(
        'ConvTranspose',
        [dy, w],
        [n, geometry.inChannels, ...inputSize],
        [
          ...convAttributes(geometry.kernel, attrs),
          attribute.ints('output_padding', transposedConvRemainder(inputSize, geometry.kernel, attrs)),
        ],
      );
    }
    const { inPerGroup, outPerGroup } = geometry;
    const grouped = this.graph.node('Reshape', [this.plain(w), this.int64s([groups, outPerGroup, inPerGroup, kh, kw])]);
    const swapped = this.graph.node('Transpose', [grouped], { attributes: [attribute.ints('perm', [0, 2, 1, 3, 4])] });
    const transposed = this.graph.node('Reshape', [swapped, this.int64s([groups * inPerGroup, outPerGroup, kh, kw])]);
    const reversed = [this.int64s([-1, -1]), this.int64s([-TO_THE_END, -TO_THE_END]), this.int64s([2, 3]), this.int64s([-1, -1])];
    const flippedName = kh * kw === 1 ? transposed : this.graph.node('Slice', [transposed, ...reversed]);
    const flipped = this.value([groups * inPerGroup, outPerGroup, kh, kw], { plain: flippedName });
    const [top, left, bottom, right] = flippedPads;
    return this.conv2d(dy, flipped, undefined, { strides: [1, 1], dilations, groups, pads: [top, left, bottom, right] });
  }

  /**
   * ONNX has no filter-gradient op. dW[o, c, i, j] = Σ dy[n,o,p,q]·x[n,c,p·s+i·d,q·s+j·d] over n, p,
   * q is one GEMM with K = N·Ho·Wo between dy laid out [N·Ho·Wo, O] and the im2col matrix of x
   * (gathered in one node), or on large images one GEMM per filter tap, so that only one tap's copy
   * of x is alive at a time. A depthwise conv on blocked data is one NCHWc conv (see BlockedLayout).
   */
  conv2dBackpropFilter(x: SymbolicTensor, dy: SymbolicTensor, filterShape: readonly number[], attrs: Conv2DAttrs): SymbolicTensor {
    const geometry = convGeometry(x.shape, filterShape, attrs);
    const [, o, ho, wo] = expectRank4(dy.shape, 'dy');
    if (o !== geometry.outChannels) {
      throw new Error(`filter ${describeShape(filterShape)} does not fit dy ${describeShape(dy.shape)}`);
    }
    expectConvOutput([ho, wo], geometry.inputSize, geometry.kernel, attrs);
    const depthwise = this.blocked?.algorithm(geometry) === 'depthwise';
    if (this.blocked && depthwise && attrs.strides.every((s) => s === 1) && attrs.dilations.every((d) => d === 1)) {
      return this.value(filterShape, { plain: this.blocked.depthwiseFilterGradient(this.blockedName(x), this.blockedName(dy), geometry) });
    }
    if (isDepthwise(geometry) && geometry.outPerGroup === 1)
      return this.value(filterShape, { plain: this.depthwiseFilterGradient(x, dy, geometry) });
    if (attrs.groups > 1) {
      return this.perGroup(geometry, (group) => this.conv2dBackpropFilter(group.x(x), group.dy(dy), group.filterShape, group.attrs), 0);
    }
    const { inChannels: c, outChannels: out } = geometry;
    const taps = geometry.kernel[0] * geometry.kernel[1];
    const dyRows = this.graph.node('Reshape', [this.channelsLast(dy), this.int64s([-1, out])]);
    let tapMajor: string;
    if (ho * wo <= SMALL_IMAGE) {
      tapMajor = this.rowSum([dyRows, out], [this.columns(x, geometry), taps * c], ho * wo);
    } else {
      const perTap = Array.from({ length: taps }, (_, tap) => this.rowSum([dyRows, out], [this.gather(x, geometry, [tap]), c], ho * wo));
      tapMajor = this.graph.node('Concat', perTap, { attributes: [attribute.int('axis', 1)] });
    }
    // [O, kh·kw·C] (tap-major) → [O, C, kh, kw]
    const channelMajor = this.graph.node('Transpose', [this.graph.node('Reshape', [tapMajor, this.int64s([out, taps, c])])], {
      attributes: [attribute.ints('perm', [0, 2, 1])],
    });
    return this.value(filterShape, { plain: this.graph.node('Reshape', [channelMajor, this.int64s(filterShape)]) });
  }

  /**
   * The filter gradient of a depthwise conv in standard ONNX, dW[c, 0, i, j] = Σ dy[n,c,p,q]·x[n,c,p·s+i·d,q·s+j·d]
   * over n, p, q: the im2col rows of x times dy's, channel by channel, summed over the rows (one tap
   * at a time on large images, so that only one tap's copy of x is alive).
   */
  private depthwiseFilterGradient(x: SymbolicTensor, dy: SymbolicTensor, geometry: ConvGeometry): string {
    const channels = geometry.inChannels;
    const taps = Array.from({ length: geometry.kernel[0] * geometry.kernel[1] }, (_, tap) => tap);
    const dyRows = this.graph.node('Reshape', [this.channelsLast(dy), this.int64s([-1, 1, channels])]);
    const tapSums = (some: readonly number[], columns: string) => {
      const rows = this.graph.node('Reshape', [columns, this.int64s([-1, some.length, channels])]);
      return this.graph.node('ReduceSum', [this.graph.node('Mul', [rows, dyRows]), this.int64s([0])], {
        attributes: [attribute.int('keepdims', 0)],
      });
    };
    const [ho, wo] = geometry.outputSize;
    const tapMajor =
      ho * wo <= SMALL_IMAGE
        ? tapSums(taps, this.columns(x, geometry))
        : this.graph.node(
            'Concat',
            taps.map((tap) => tapSums([tap], this.gather(x, geometry, [tap]))),
            { attributes: [attribute.int('axis', 0)] },
          );
    // [kh·kw, C] → [C, 1, kh, kw]
    const channelMajor = this.graph.node('Transpose', [tapMajor], { attributes: [attribute.ints('perm', [1, 0])] });
    return this.graph.node('Reshape', [channelMajor, this.int64s([channels, 1, ...geometry.kernel])]);
  }

  /**
   * aᵀ·b for a [K, M] and b [K, N] (each given with its column count) whose rows are pixels, K =
   * batch·pixels. When M·N is small, as a batch of GEMMs over contiguous runs of rows, summed, which
   * ONNX Runtime spreads over its threads; a single GEMM with so long a K and so few columns is 2-5×
   * slower.
   */
  private rowSum([a, aColumns]: [string, number], [b, bColumns]: [string, number], pixelsPerImage: number): string {
    // Worth it for a small product only: summing the chunks' products costs a pass over them all.
    const small = aColumns * bColumns <= SMALL_PRODUCT;
    const chunks = small ? [4, 2, 3, 5, 7].find((d) => pixelsPerImage % d === 0) : undefined;
    if (chunks === undefined) return this.graph.node('Gemm', [a, b], { attributes: [attribute.int('transA', 1)] });
    const chunked = (rows: string, columns: number) => this.graph.node('Reshape', [rows, this.int64s([chunks, -1, columns])]);
    const aT = this.graph.node('Transpose', [chunked(a, aColumns)], { attributes: [attribute.ints('perm', [0, 2, 1])] });
    const partial = this.graph.node('MatMul', [aT, chunked(b, bColumns)]);
    return this.graph.node('ReduceSum', [partial, this.int64s([0])], { attributes: [attribute.int('keepdims', 0)] });
  }

  avgPool(x: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    return this.plainNode('AveragePool', [x], pooledShape(x.shape, attrs), [
      ...poolAttributes(attrs),
      attribute.int('count_include_pad', attrs.countIncludePad ? 1 : 0),
    ]);
  }

  /** The transpose of average pooling: dy divided by each window's divisor, spread by a depthwise ConvTranspose of ones. */
  avgPoolBackprop(dy: SymbolicTensor, inputSize: Pair, attrs: PoolAttrs): SymbolicTensor {
    const [n, c, ho, wo] = expectRank4(dy.shape, 'dy');
    expectConvOutput([ho, wo], inputSize, attrs.kernel, { ...attrs, dilations: [1, 1] });
    const [kh, kw] = attrs.kernel;
    const reciprocal = attrs.countIncludePad
      ? this.graph.floatScalar(1 / (kh * kw))
      : this.graph.floatConstant(`avgpool divisors ${inputSize} ${JSON.stringify(attrs)}`, () =>
          windowReciprocals(inputSize, [ho, wo], attrs),
        );
    const ones = this.graph.floatConstant(`ones ${c}x${kh}x${kw}`, () => hostTensor([c, 1, kh, kw], new Float32Array(c * kh * kw).fill(1)));
    const scaled = this.graph.node('Mul', [this.plain(dy), reciprocal]);
    const poolAsConv = { strides: attrs.strides, pads: attrs.pads, dilations: [1, 1] as const, groups: c };
    const spread = this.graph.node('ConvTranspose', [scaled, ones], {
      attributes: [
        ...convAttributes(attrs.kernel, poolAsConv),
        attribute.ints('output_padding', transposedConvRemainder(inputSize, attrs.kernel, poolAsConv)),
      ],
    });
    return this.value([n, c, ...inputSize], { plain: spread });
  }

  maxPool(x: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    return this.plainNode('MaxPool', [x], pooledShape(x.shape, attrs), poolAttributes(attrs));
  }

  /** Gathers dx at the flat index ONNX Runtime's MaxPool reports for each window (its first maximum). */
  maxPoolJvp(x: SymbolicTensor, dx: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    if (!sameShape(x.shape, dx.shape)) throw new Error(`tangent ${describeShape(dx.shape)} differs from input ${describeShape(x.shape)}`);
    const flatTangent = this.graph.node('Reshape', [this.plain(dx), this.int64s([-1])]);
    const gathered = this.graph.node('Gather', [flatTangent, this.maxPoolArgmax(x, attrs)], { attributes: [attribute.int('axis', 0)] });
    return this.value(pooledShape(x.shape, attrs), { plain: gathered });
  }

  /** Scatter-adds dy into zeros at each window's first maximum (windows overlap, so indices repeat). */
  maxPoolBackprop(x: SymbolicTensor, dy: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    const pooled = pooledShape(x.shape, attrs);
    if (!sameShape(pooled, dy.shape))
      throw new Error(`dy ${describeShape(dy.shape)} differs from the pooled shape ${describeShape(pooled)}`);
    const flat = this.int64s([-1]);
    const flatInput = this.graph.node('Reshape', [this.plain(x), flat]);
    const zeros = this.graph.node('ConstantOfShape', [this.graph.node('Shape', [flatInput])], {
      attributes: [attribute.tensor('value', floatTensorProto('zero', hostTensor([1], [0])))],
    });
    const scattered = this.graph.node(
      'ScatterElements',
      [zeros, this.graph.node('Reshape', [this.maxPoolArgmax(x, attrs), flat]), this.graph.node('Reshape', [this.plain(dy), flat])],
      { attributes: [attribute.int('axis', 0), attribute.string('reduction', 'add')] },
    );
    return this.value(x.shape, { plain: this.graph.node('Reshape', [scattered, this.int64s(x.shape)]) });
  }

  // ---- values and their layouts ----

  private value(shape: readonly number[], layouts: Layouts): SymbolicTensor {
    const handle: SymbolicTensor = { shape: [...shape] };
    this.layouts.set(handle, { ...layouts });
    return handle;
  }

  private layoutsOf(x: SymbolicTensor): Layouts {
    const layouts = this.layouts.get(x);
    if (!layouts)
      throw new Error(
        `a value of shape ${describeShape(x?.shape ?? [])} does not belong to this trace (was it created by another program or backend?)`,
      );
    const pending = this.broadcasts.get(x);
    if (pending) {
      // Any use but an elementwise op's writes the broadcast out.
      this.broadcasts.delete(x);
      Object.assign(layouts, this.layoutsOf(pending.write()));
    }
    return layouts;
  }

  /** Whether a value of this spatial size has the same memory in every layout (one pixel per channel). */
  private static onePixel(shape: readonly number[]): boolean {
    return shape.length === 4 && shape[2] === 1 && shape[3] === 1;
  }

  /** The value in plain NCHW layout, converted once if it only exists in another. */
  private plain(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    if (layouts.plain === undefined) {
      if (layouts.blocked !== undefined) {
        layouts.plain = OnnxGraphBuilder.onePixel(x.shape) ? layouts.blocked : this.requireBlocked().toPlain(layouts.blocked, x.shape);
      } else {
        layouts.plain = this.graph.node('Transpose', [layouts.channelsLast as string], {
          attributes: [attribute.ints('perm', [0, 3, 1, 2])],
        });
      }
    }
    return layouts.plain;
  }

  /** The value in NCHWc layout (its shape must allow it), converted once if needed. */
  private blockedName(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    const blocked = this.requireBlocked();
    if (!blocked.holds(x.shape)) throw new Error(`${describeShape(x.shape)} cannot be stored in NCHWc blocks of ${blocked.block}`);
    if (layouts.blocked === undefined) {
      if (layouts.plain !== undefined) {
        layouts.blocked = OnnxGraphBuilder.onePixel(x.shape) ? layouts.plain : blocked.toBlocked(layouts.plain);
      } else {
        layouts.blocked = blocked.fromChannelsLast(layouts.channelsLast as string);
      }
    }
    return layouts.blocked;
  }

  /** The value in NHWC layout, converted once if needed. */
  private channelsLast(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    if (layouts.channelsLast === undefined) {
      layouts.channelsLast =
        layouts.plain === undefined && layouts.blocked !== undefined
          ? this.requireBlocked().toChannelsLast(layouts.blocked, x.shape)
          : this.graph.node('Transpose', [this.plain(x)], { attributes: [attribute.ints('perm', [0, 2, 3, 1])] });
    }
    return layouts.channelsLast;
  }

  private requireBlocked(): BlockedLayout {
    if (!this.blocked) throw new Error('internal: a blocked value in a graph traced without NCHWc');
    return this.blocked;
  }

  /** Whether a value exists only outside plain layout, so that working on it in place saves a conversion. */
  private awayFromPlain(x: SymbolicTensor): boolean {
    return this.layoutsOf(x).plain === undefined;
  }

  private plainNode(
    opType: string,
    inputs: readonly SymbolicTensor[],
    shape: readonly number[],
    attributes: AttributeProto[] = [],
    extraInputs: readonly string[] = [],
  ): SymbolicTensor {
    return this.value(shape, { plain: this.graph.node(opType, [...inputs.map((x) => this.plain(x)), ...extraInputs], { attributes }) });
  }

  /**
   * An elementwise op with NumPy broadcasting. When an operand lives blocked and the result can, the
   * op runs on blocked data (per-channel or per-pixel broadcasts through 5-D views); comparisons are
   * cast to float 1/0. A scalar against a tensor whose last axis is 1 is applied to flat views (the
   * reshapes are free): ONNX Runtime's broadcasting loops over the innermost axis, and crawls when that
   * axis has size 1, as in a [O, C, 1, 1] filter times a scalar.
   */
  private elementwise(opType: string, given: readonly SymbolicTensor[]): SymbolicTensor {
    const shape = given.map((x) => x.shape).reduce((a, b) => broadcastShapes(a, b));
    if (opType === 'Mul' && given.length === 2) {
      const uniform = given.findIndex((x) => this.uniformConstants.has(x));
      if (uniform >= 0) return this.timesUniform(given[1 - uniform], given[uniform], shape);
    }
    // A pending broadcast enters as its small value wherever NumPy broadcasting gives the same result.
    const operands = given.map((x, i) => {
      const small = this.broadcasts.get(x)?.small;
      if (!small) return x;
      const others = given.filter((_, j) => j !== i).map((y) => y.shape);
      return sameShape(
        others.reduce((a, b) => broadcastShapes(a, b), small.shape),
        shape,
      )
        ? small
        : x;
    });
    return this.writeElementwise(opType, operands, shape);
  }

  /**
   * x times a constant whose values are all u (the transpose of a mean, which spreads each value over
   * the pixels): x·u, broadcast to the product's shape only when a consumer needs it written out. The
   * usual consumer, a ReLU mask, multiplies it in with NumPy broadcasting instead, which saves a pass
   * over the full-size tensor.
   */
  private timesUniform(x: SymbolicTensor, uniform: SymbolicTensor, shape: readonly number[]): SymbolicTensor {
    const scaled = this.writeElementwise('Mul', [x, this.scalar(this.uniformConstants.get(uniform) as number)], x.shape);
    if (sameShape(x.shape, shape)) return scaled;
    const pending = this.value(shape, {});
    this.broadcasts.set(pending, { small: scaled, write: () => this.writeElementwise('Mul', [x, uniform], shape) });
    return pending;
  }

  private writeElementwise(opType: string, operands: readonly SymbolicTensor[], shape: readonly number[]): SymbolicTensor {
    const emit = (names: string[]) => {
      const result = this.graph.node(opType, names);
      return opType === 'Greater' || opType === 'Less'
        ? this.graph.node('Cast', [result], { attributes: [attribute.int('to', FLOAT_DATA_TYPE)] })
        : result;
    };
    // Blocked when an operand lives only blocked, or when every full-size operand is blocked already.
    const fullSize = operands.filter((x) => sameShape(x.shape, shape));
    const inBlocks =
      this.blocked?.holds(shape) === true &&
      (operands.some((x) => this.awayFromPlain(x)) ||
        (fullSize.length > 0 && fullSize.every((x) => this.layoutsOf(x).blocked !== undefined)));
    const flat = shape.at(-1) === 1 && operands.some((x) => x.shape.length === 0);
    if (operands.every((x) => x.shape.length === 0 || sameShape(x.shape, shape)) && (flat || inBlocks)) {
      const name = (x: SymbolicTensor) => (x.shape.length === 0 ? this.plain(x) : inBlocks ? this.blockedName(x) : this.plain(x));
      if (!flat) return this.value(shape, { blocked: emit(operands.map(name)) });
      const flatShape = this.int64s([-1]);
      const names = operands.map((x) => (x.shape.length === 0 ? name(x) : this.graph.node('Reshape', [name(x), flatShape])));
      const result = this.graph.node('Reshape', [emit(names), this.int64s(shape.map((d) => (d === BATCH ? -1 : d)))]);
      return this.value(shape, inBlocks ? { blocked: result } : { plain: result });
    }
    if (inBlocks) {
      const views = operands.map((x) => this.blockedView(x, shape));
      if (views.every((v) => v !== undefined))
        return this.value(shape, { blocked: this.requireBlocked().unview(emit(views as string[]), shape) });
    }
    return this.value(shape, { plain: emit(operands.map((x) => this.plain(x))) });
  }

  /** A 5-D view of an operand that broadcasts against a blocked result of `shape`, if the operand has one. */
  private blockedView(x: SymbolicTensor, shape: readonly number[]): string | undefined {
    if (x.shape.length === 0) return this.plain(x);
    if (x.shape.length > 4) return undefined;
    const [n, c, h, w] = [...Array<number>(4 - x.shape.length).fill(1), ...x.shape];
    const blocked = this.requireBlocked();
    if (c === 1) return blocked.view(this.plain(x), [n, c, h, w]);
    if (c !== shape[1]) return undefined;
    if (x.shape.length === 4) return blocked.view(this.blockedName(x), x.shape);
    // [C, h, w] or [C, 1]-like operands: blocked memory only when they are one pixel per channel.
    return h === 1 && w === 1 ? blocked.view(this.plain(x), [n, c, h, w]) : undefined;
  }

  private reduce(opType: 'ReduceSum' | 'ReduceMax', x: SymbolicTensor, axes: readonly number[], keepDims: boolean): SymbolicTensor {
    const reduced = normalizeAxes(axes, x.shape.length, opType);
    if (reduced.length === 0) return x;
    const shape = keepDims ? x.shape.map((d, i) => (reduced.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !reduced.includes(i));
    const keep = attribute.int('keepdims', keepDims ? 1 : 0);
    // Opset 17 takes ReduceSum's axes as an input but ReduceMax's as an attribute.
    const emit = (input: string, over: readonly number[]) =>
      opType === 'ReduceSum'
        ? this.graph.node(opType, [input, this.int64s(over)], { attributes: [keep] })
        : this.graph.node(opType, [input], { attributes: [keep, attribute.ints('axes', over)] });
    // Over the spatial axes (and maybe the batch) of a blocked value, channels stay in their blocks, and
    // the result (one pixel per channel) has the same memory in plain layout.
    // The batch is summed after the pixels: one reduction over both axes at once is several times slower.
    const spatial = reduced.includes(2) && reduced.includes(3) && !reduced.includes(1);
    if (this.blocked && spatial && this.awayFromPlain(x) && this.blocked.holds(x.shape)) {
      const pixels = emit(this.blocked.view(this.blockedName(x), x.shape), [2, 3]);
      const all = reduced.includes(0) ? emit(pixels, [0]) : pixels;
      return this.value(shape, { plain: this.graph.node('Reshape', [all, this.int64s(shape.map((d) => (d === BATCH ? -1 : d)))]) });
    }
    return this.value(shape, { plain: emit(this.plain(x), reduced) });
  }

  private int64s(values: readonly number[]): string {
    return this.graph.int64s(values);
  }

  /** The im2col matrix of x for a conv (groups 1), [N·Ho·Wo, kh·kw·C] with tap-major columns, built once per x and geometry. */
  private columns(x: SymbolicTensor, geometry: ConvGeometry): string {
    const key = `${this.layoutsKey(x)} ${JSON.stringify(geometry)}`;
    let matrix = this.columnMatrices.get(key);
    if (matrix === undefined) {
      matrix = this.gather(
        x,
        geometry,
        Array.from({ length: geometry.kernel[0] * geometry.kernel[1] }, (_, tap) => tap),
      );
      this.columnMatrices.set(key, matrix);
    }
    return matrix;
  }

  /** What the given filter taps of a conv read of x, as [N·Ho·Wo, taps·C]: one Gather over x in NHWC, zero-padded. */
  private gather(x: SymbolicTensor, geometry: ConvGeometry, taps: readonly number[]): string {
    const [top, left, bottom, right] = geometry.attrs.pads;
    const [h, w] = geometry.inputSize;
    const c = geometry.inChannels;
    const nhwc = this.channelsLast(x);
    const { kernel, attrs } = geometry;
    // A 1×1 conv with stride 1 reads every pixel once, in order: its im2col matrix is x in NHWC.
    if (kernel[0] * kernel[1] === 1 && attrs.strides.every((s) => s === 1) && attrs.pads.every((p) => p === 0)) {
      return this.graph.node('Reshape', [nhwc, this.int64s([-1, c])]);
    }
    const padded = [top, left, bottom, right].every((p) => p === 0)
      ? nhwc
      : this.graph.node('Pad', [nhwc, this.int64s([0, top, left, 0, 0, bottom, right, 0])]);
    const pixels = this.graph.node('Reshape', [padded, this.int64s([-1, (h + top + bottom) * (w + left + right), c])]);
    const [ho, wo] = geometry.outputSize;
    const indices = this.graph.derivedConstant(`taps ${JSON.stringify(geometry)} ${taps}`, (name) =>
      int64TensorProto(name, tapIndices(geometry, taps), [ho * wo, taps.length]),
    );
    const gathered = this.graph.node('Gather', [pixels, indices], { attributes: [attribute.int('axis', 1)] });
    return this.graph.node('Reshape', [gathered, this.int64s([-1, taps.length * c])]);
  }

  private layoutsKey(x: SymbolicTensor): string {
    const layouts = this.layoutsOf(x);
    return layouts.plain ?? layouts.blocked ?? (layouts.channelsLast as string);
  }

  /**
   * A grouped conv (or its filter gradient) as one conv per group on that group's channels, concatenated
   * along `axis` (channels of the output, or the filter's output axis).
   */
  private perGroup(
    geometry: ConvGeometry,
    run: (group: {
      x(value: SymbolicTensor): SymbolicTensor;
      dy(value: SymbolicTensor): SymbolicTensor;
      filter(value: SymbolicTensor): SymbolicTensor;
      bias(value: SymbolicTensor | undefined): SymbolicTensor | undefined;
      filterShape: readonly number[];
      attrs: Conv2DAttrs;
    }) => SymbolicTensor,
    axis = 1,
  ): SymbolicTensor {
    const { inPerGroup, outPerGroup, attrs } = geometry;
    const channels = (value: SymbolicTensor, along: number, per: number, g: number) => {
      const begins = value.shape.map((_, i) => (i === along ? g * per : 0));
      const ends = value.shape.map((_, i) => (i === along ? (g + 1) * per : TO_THE_END));
      return this.slice(
        value,
        begins,
        ends,
        value.shape.map(() => 1),
      );
    };
    const parts = Array.from({ length: attrs.groups }, (_, g) =>
      run({
        x: (value) => channels(value, 1, inPerGroup, g),
        dy: (value) => channels(value, 1, outPerGroup, g),
        filter: (value) => channels(value, 0, outPerGroup, g),
        bias: (value) => value && channels(value, 0, outPerGroup, g),
        filterShape: [outPerGroup, inPerGroup, ...geometry.kernel],
        attrs: { ...attrs, groups: 1 },
      }),
    );
    return this.concat(parts, axis);
  }

  /** MaxPool's second output: per window, the flat NCHW index of its first maximum (padding never wins). */
  private maxPoolArgmax(x: SymbolicTensor, attrs: PoolAttrs): string {
    const key = `${this.layoutsKey(x)} ${JSON.stringify(attrs)}`;
    let indices = this.maxPoolIndices.get(key);
    if (!indices) {
      indices = this.graph.nodeOutputs('MaxPool', [this.plain(x)], 2, { attributes: poolAttributes(attrs) })[1];
      this.maxPoolIndices.set(key, indices);
    }
    return indices;
  }
}
