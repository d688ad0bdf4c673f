import {
  BATCH,
  type Conv2DAttrs,
  fromStorageOrderComposite,
  type HostTensor,
  hostTensor,
  type Kernels,
  type Pair,
  type PoolAttrs,
  STORAGE_BLOCK,
  sameShape,
  storedBlocked,
  toStorageOrderComposite,
} from '@gradfeat/core/engine';
import { BlockedLayout, type NchwcAlgorithm } from './blocked-layout.js';
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
import { convLowering, filterGradientLowering, rowSumChunks, wholeColumns } from './lowering-choices.js';
import type { LoweringOptions } from './lowering-options.js';
import { OnnxGraph } from './onnx-graph.js';
import { type AttributeProto, attribute, FLOAT_DATA_TYPE, floatTensorProto, int64TensorProto, type ModelContents } from './proto.js';
import { broadcastShapes, describeShape, normalizeAxes, resolveReshape } from './symbolic-shape.js';
import { type Condition, type SymbolicTensor, ValueLayouts } from './value-layouts.js';

export type { SymbolicTensor } from './value-layouts.js';

/** Slice ends at least this large mean "to the end of the axis" (core writes Number.MAX_SAFE_INTEGER). */
const TO_THE_END = 2 ** 31 - 1;

/**
 * Records kernel calls as an ONNX graph instead of running them. Every value's static shape is
 * tracked so that errors surface while tracing, at the kernel that caused them, rather than as an
 * ONNX Runtime failure at run time. With an NCHWc block size, convolutions (constant or run-time
 * filters) run on ONNX Runtime's blocked layout and values stay in it between ops that allow it.
 */
export class OnnxGraphBuilder implements Kernels<SymbolicTensor> {
  private readonly graph = new OnnxGraph();
  private readonly values: ValueLayouts;
  private readonly blocked?: BlockedLayout;
  private readonly constants = new Map<HostTensor, SymbolicTensor>();
  private readonly scalars = new Map<number, SymbolicTensor>();
  /** Constants whose values are all one number, with that number. */
  private readonly uniformConstants = new Map<SymbolicTensor, number>();
  /** Clip nodes with one bound, so that a second bound on their result makes one Clip with both. */
  private readonly halfClips = new Map<SymbolicTensor, { input: SymbolicTensor; low?: SymbolicTensor; high?: SymbolicTensor }>();
  /** The latest Clip of each clipped value, with its bounds (±∞ when absent). */
  private readonly clipsOf = new Map<SymbolicTensor, { clipped: SymbolicTensor; low: number; high: number }>();
  private readonly maxPoolIndices = new Map<string, string>();
  /** im2col matrices by input value and conv geometry: a conv with a run-time filter and its filter gradient share one. */
  private readonly columnMatrices = new Map<string, string>();
  private lowersFasterPerBatchSize = false;

  constructor(options: LoweringOptions = {}) {
    if (options.nchwcBlockSize !== undefined) this.blocked = new BlockedLayout(this.graph, options.nchwcBlockSize);
    this.values = new ValueLayouts(this.graph, this.blocked);
  }

  input(name: string, shape: readonly number[]): SymbolicTensor {
    this.graph.addInput(name, shape);
    return this.values.create(shape, { plain: name });
  }

  /** Makes `value` a graph output; returns the ONNX name, which is `name` unless that is taken. */
  output(name: string, value: SymbolicTensor): string {
    return this.graph.addOutput(name, this.values.plain(value), value.shape);
  }

  encode(model: Pick<ModelContents, 'graphName' | 'docString' | 'metadata'>): Uint8Array {
    return this.graph.encode(model);
  }

  /** Whether a trace at a fixed batch size would lower some kernel faster than this one (see BlockedLayout.depthwiseFilterGradient and timesPerImageChannel). */
  get fasterPerBatchSize(): boolean {
    return this.lowersFasterPerBatchSize;
  }

  // ---- kernels ----

  shape(x: SymbolicTensor): readonly number[] {
    this.values.own(x);
    return x.shape;
  }

  constant(value: HostTensor): SymbolicTensor {
    let handle = this.constants.get(value);
    if (!handle) {
      handle = this.values.create(value.shape, { plain: this.graph.initializer(floatTensorProto(this.graph.freshName('const'), value)) });
      this.constants.set(value, handle);
      if (value.data.length > 1 && value.data.every((v) => v === value.data[0])) this.uniformConstants.set(handle, value.data[0]);
    }
    return handle;
  }

  scalar(value: number): SymbolicTensor {
    let handle = this.scalars.get(value);
    if (!handle) {
      handle = this.values.create([], { plain: this.graph.floatScalar(value) });
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
    return this.comparison('Greater', a, b);
  }
  less(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.comparison('Less', a, b);
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

  /**
   * max(x, s) or min(x, s) with a scalar s as Clip, which ONNX Runtime runs faster than a broadcasting
   * Max or Min; in x's layout. A bound on a Clip's result that lacks it (ReLU6 is min(max(x, 0), 6))
   * becomes one Clip with both, and the first one is pruned unless something else reads it.
   */
  private clipped(x: SymbolicTensor, bound: SymbolicTensor, side: 'min' | 'max'): SymbolicTensor | undefined {
    if (bound.shape.length !== 0 || x.shape.length === 0) return undefined;
    const half = this.halfClips.get(x);
    const bounds = side === 'min' ? { low: bound, high: half?.high } : { low: half?.low, high: bound };
    // Clip(Clip(x, low), ·, high) is Clip(x, low, high) when low ≤ high (both scalars of this trace).
    const merged = half !== undefined && half[side === 'min' ? 'low' : 'high'] === undefined && this.ordered(bounds.low, bounds.high);
    const input = merged ? half.input : x;
    const limits = merged ? bounds : side === 'min' ? { low: bound } : { high: bound };
    const names = [limits.low ? this.values.plain(limits.low) : '', limits.high ? this.values.plain(limits.high) : ''];
    const layouts = this.values.layoutsOf(input);
    const result =
      layouts.plain === undefined && layouts.blocked !== undefined
        ? this.values.create(x.shape, { blocked: this.graph.node('Clip', [layouts.blocked, ...names]) })
        : this.values.create(x.shape, { plain: this.graph.node('Clip', [this.values.plain(input), ...names]) });
    if (!merged) this.halfClips.set(result, { input, ...limits });
    const boundValue = (limit: SymbolicTensor | undefined, absent: number) => (limit ? (this.scalarValue(limit) ?? Number.NaN) : absent);
    this.clipsOf.set(input, { clipped: result, low: boundValue(limits.low, -Infinity), high: boundValue(limits.high, Infinity) });
    return result;
  }

  /** The value of a scalar this trace made with `scalar`, else undefined. */
  private scalarValue(x: SymbolicTensor): number | undefined {
    const name = x.shape.length === 0 ? this.values.own(x).plain : undefined;
    return name === undefined ? undefined : this.graph.scalarValue(name);
  }

  private ordered(low: SymbolicTensor | undefined, high: SymbolicTensor | undefined): boolean {
    const [a, b] = [low && this.scalarValue(low), high && this.scalarValue(high)];
    return a !== undefined && b !== undefined && a <= b;
  }

  /**
   * A comparison's result, float 1/0 as the kernel contract says. The boolean is kept, so that the
   * product of two comparisons (ReLU6's mask) is their And, one byte-wide pass instead of two Casts
   * and a Mul; the float is written out on its first other use. (Where(condition, x, 0) for a product
   * with a float measured slower than Cast and Mul in ONNX Runtime 1.30.)
   */
  private comparison(opType: 'Greater' | 'Less', a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.deferCondition(this.elementwise(opType, [this.clippedAlike(opType, a, b) ?? a, b]));
  }

  /**
   * The Clip y = clip(x, low, high) of x, when comparing y with the scalar b gives the same mask as
   * comparing x: x > b ⇔ y > b for low ≤ b < high, and x < b ⇔ y < b for low < b ≤ high (a ReLU's
   * or ReLU6's backward mask). Read from y, the mask leaves the conv before the Clip with no other
   * reader, so the Clip folds into it (fuseIntoConvs).
   */
  private clippedAlike(opType: 'Greater' | 'Less', x: SymbolicTensor, b: SymbolicTensor): SymbolicTensor | undefined {
    const clip = this.clipsOf.get(x);
    const value = this.scalarValue(b);
    if (!clip || value === undefined) return undefined;
    const same = opType === 'Greater' ? clip.low <= value && value < clip.high : clip.low < value && value <= clip.high;
    return same ? clip.clipped : undefined;
  }

  private deferCondition(booleans: SymbolicTensor): SymbolicTensor {
    const layouts = this.values.layoutsOf(booleans);
    const condition: Condition =
      layouts.blocked !== undefined ? { name: layouts.blocked, blocked: true } : { name: layouts.plain as string, blocked: false };
    return this.values.defer(booleans.shape, {
      condition,
      write: () => {
        const cast = this.graph.node('Cast', [condition.name], { attributes: [attribute.int('to', FLOAT_DATA_TYPE)] });
        return this.values.create(booleans.shape, condition.blocked ? { blocked: cast } : { plain: cast });
      },
    });
  }

  /** The product of two kept comparisons of the same shape and layout as their And, or undefined. */
  private conjunction(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor | undefined {
    const [p, q] = [this.values.deferred(a)?.condition, this.values.deferred(b)?.condition];
    if (!p || !q || p.blocked !== q.blocked || !sameShape(a.shape, b.shape)) return undefined;
    return this.deferCondition(
      this.values.create(a.shape, { [p.blocked ? 'blocked' : 'plain']: this.graph.node('And', [p.name, q.name]) }),
    );
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

  /** Lowered as `convLowering` chooses (see lowering-choices.ts). */
  conv2d(x: SymbolicTensor, w: SymbolicTensor, bias: SymbolicTensor | undefined, attrs: Conv2DAttrs): SymbolicTensor {
    const geometry = convGeometry(x.shape, w.shape, attrs);
    const { outChannels, outputSize } = geometry;
    if (bias && !sameShape(bias.shape, [outChannels])) throw new Error(`bias must be [${outChannels}], got ${describeShape(bias.shape)}`);
    const shape = [geometry.batch, outChannels, ...outputSize];
    const algorithm = this.blocked?.algorithm(geometry);
    switch (convLowering(geometry, algorithm, this.graph.isConstant(this.values.plain(w)))) {
      case 'nchwc': {
        const blocked = this.values.requireBlocked();
        const input = algorithm === 'plain' ? this.values.plain(x) : this.values.blocked(x);
        return this.values.create(shape, {
          blocked: blocked.conv(input, this.values.plain(w), bias && this.values.plain(bias), geometry, algorithm as NchwcAlgorithm),
        });
      }
      case 'onnx-conv':
        return this.plainNode('Conv', bias ? [x, w, bias] : [x, w], shape, convAttributes(geometry.kernel, attrs));
      case 'per-group':
        return this.perGroup(geometry, (group) => this.conv2d(group.x(x), group.filter(w), group.bias(bias), group.attrs));
      case 'im2col-gemm':
        return this.im2colConv(x, w, bias, geometry);
    }
  }

  /** y [N·Ho·Wo, O] = the batch's im2col matrix [N·Ho·Wo, kh·kw·C] · W as [O, kh·kw·C] (tap-major like the columns), bias fused. */
  private im2colConv(x: SymbolicTensor, w: SymbolicTensor, bias: SymbolicTensor | undefined, geometry: ConvGeometry): SymbolicTensor {
    const { outChannels, outputSize } = geometry;
    const [kh, kw] = geometry.kernel;
    const filterRows = this.graph.node('Reshape', [
      this.graph.node(
        'Transpose',
        [this.graph.node('Reshape', [this.values.plain(w), this.int64s([outChannels, geometry.inChannels, kh * kw])])],
        { attributes: [attribute.ints('perm', [0, 2, 1])] },
      ),
      this.int64s([outChannels, -1]),
    ]);
    const product = this.graph.node('Gemm', [this.columns(x, geometry), filterRows, ...(bias ? [this.values.plain(bias)] : [])], {
      attributes: [attribute.int('transB', 1)],
    });
    const channelsLast = this.graph.node('Reshape', [product, this.int64s([-1, ...outputSize, outChannels])]);
    return this.values.create([geometry.batch, outChannels, ...outputSize], { channelsLast });
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
    const grouped = this.graph.node('Reshape', [this.values.plain(w), this.int64s([groups, outPerGroup, inPerGroup, kh, kw])]);
    const swapped = this.graph.node('Transpose', [grouped], { attributes: [attribute.ints('perm', [0, 2, 1, 3, 4])] });
    const transposed = this.graph.node('Reshape', [swapped, this.int64s([groups * inPerGroup, outPerGroup, kh, kw])]);
    const taps = kh * kw;
    // Flipping both spatial axes reverses the flat tap index.
    const flippedName = taps === 1 ? transposed : this.permuteTaps(transposed, [groups * inPerGroup, outPerGroup, kh, kw], 'flip');
    const flipped = this.values.create([groups * inPerGroup, outPerGroup, kh, kw], { plain: flippedName });
    const [top, left, bottom, right] = flippedPads;
    return this.conv2d(dy, flipped, undefined, { strides: [1, 1], dilations, groups, pads: [top, left, bottom, right] });
  }

  /**
   * ONNX has no filter-gradient op: dW[o, c, i, j] = Σ dy[n,o,p,q]·x[n,c,p·s+i·d,q·s+j·d] over n, p, q,
   * lowered as `filterGradientLowering` chooses (see lowering-choices.ts).
   */
  conv2dBackpropFilter(x: SymbolicTensor, dy: SymbolicTensor, filterShape: readonly number[], attrs: Conv2DAttrs): SymbolicTensor {
    const geometry = convGeometry(x.shape, filterShape, attrs);
    const [, o, ho, wo] = expectRank4(dy.shape, 'dy');
    if (o !== geometry.outChannels) {
      throw new Error(`filter ${describeShape(filterShape)} does not fit dy ${describeShape(dy.shape)}`);
    }
    expectConvOutput([ho, wo], geometry.inputSize, geometry.kernel, attrs);
    const gradient = (plain: string) => this.values.create(filterShape, { plain });
    const { inChannels: c, outChannels: out } = geometry;
    const taps = geometry.kernel[0] * geometry.kernel[1];
    const lowering = filterGradientLowering(geometry, this.blocked?.algorithm(geometry));
    switch (lowering) {
      case 'nchwc-depthwise':
        if (geometry.batch === BATCH) this.lowersFasterPerBatchSize = true;
        return gradient(this.values.requireBlocked().depthwiseFilterGradient(this.values.blocked(x), this.values.blocked(dy), geometry));
      case 'depthwise-taps':
        return gradient(this.depthwiseFilterGradient(x, dy, geometry));
      case 'per-group':
        return this.perGroup(geometry, (group) => this.conv2dBackpropFilter(group.x(x), group.dy(dy), group.filterShape, group.attrs), 0);
      case 'pointwise-channels-first': {
        // [O, N·h·w]·[C, N·h·w]ᵀ
        const product = this.graph.node('Gemm', [this.values.channelsFirst(dy), this.values.channelsFirst(x)], {
          attributes: [attribute.int('transB', 1)],
        });
        return gradient(this.graph.node('Reshape', [product, this.int64s(filterShape)]));
      }
      case 'im2col-gemm':
      case 'per-tap-gemm': {
        // dyᵀ times x's im2col matrix, whole or one tap at a time.
        const tapMajor =
          lowering === 'im2col-gemm'
            ? this.dyTimesRows(dy, [this.columns(x, geometry), taps * c])
            : this.graph.node(
                'Concat',
                Array.from({ length: taps }, (_, tap) => this.dyTimesRows(dy, [this.gather(x, geometry, [tap]), c])),
                { attributes: [attribute.int('axis', 1)] },
              );
        // [O, kh·kw·C] (tap-major) → [O, C, kh, kw]
        return gradient(this.permuteTaps(this.graph.node('Reshape', [tapMajor, this.int64s([out, taps, c])]), filterShape, 'tapsLast'));
      }
    }
  }

  /**
   * A filter's taps reordered as a GEMM with a permutation matrix: `x` viewed as rows of its kh·kw
   * taps times the anti-identity ('flip': both spatial axes flipped), or `x` [O, taps, C] read
   * transposed times the identity ('tapsLast': [O, C, taps]). MLAS runs it several times faster
   * than the Transpose or negative-step Slice that move single floats ([512, 512, 3, 3]: about 1
   * against 3-8 ms). Finite values come out exactly (one input times 1 plus zeros); an infinite one
   * turns its row's other taps into NaN, which only a diverged step has. Returns `shape`.
   */
  private permuteTaps(x: string, shape: readonly number[], move: 'flip' | 'tapsLast'): string {
    const taps = shape[2] * shape[3];
    const permutation = this.graph.floatConstant(`tap permutation ${taps} ${move}`, () =>
      hostTensor(
        [taps, taps],
        Float32Array.from({ length: taps * taps }, (_, i) =>
          Math.floor(i / taps) === (move === 'flip' ? taps - 1 - (i % taps) : i % taps) ? 1 : 0,
        ),
      ),
    );
    // ONNX Runtime fuses the Transpose into the MatMul (its A operand read transposed).
    const rows =
      move === 'tapsLast'
        ? this.graph.node('Transpose', [x], { attributes: [attribute.ints('perm', [0, 2, 1])] })
        : this.graph.node('Reshape', [x, this.int64s([-1, taps])]);
    return this.graph.node('Reshape', [this.graph.node('MatMul', [rows, permutation]), this.int64s(shape)]);
  }

  /**
   * The filter gradient of a depthwise conv in standard ONNX, dW[c, 0, i, j] = Σ dy[n,c,p,q]·x[n,c,p·s+i·d,q·s+j·d]
   * over n, p, q: the im2col rows of x times dy's, channel by channel, summed over the rows (one tap
   * at a time on large images, so that only one tap's copy of x is alive).
   */
  private depthwiseFilterGradient(x: SymbolicTensor, dy: SymbolicTensor, geometry: ConvGeometry): string {
    const channels = geometry.inChannels;
    const taps = Array.from({ length: geometry.kernel[0] * geometry.kernel[1] }, (_, tap) => tap);
    const dyRows = this.graph.node('Reshape', [this.values.channelsLast(dy), this.int64s([-1, 1, channels])]);
    const tapSums = (some: readonly number[], columns: string) => {
      const rows = this.graph.node('Reshape', [columns, this.int64s([-1, some.length, channels])]);
      return this.graph.node('ReduceSum', [this.graph.node('Mul', [rows, dyRows]), this.int64s([0])], {
        attributes: [attribute.int('keepdims', 0)],
      });
    };
    const tapMajor = wholeColumns(geometry)
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
   * dyᵀ·rows for dy [N, O, h, w] and rows [K, columns] whose rows are dy's pixels (K = N·h·w): a
   * filter gradient's long GEMM. Whole, it reads dy channels-first, [O, K]·[K, columns] with neither
   * operand transposed, which MLAS runs 15-20 % faster than reading dy's channels-last rows
   * transposed (ResNet-18 layer4: 50 against 62 ms). Split into `rowSumChunks` chunks of rows (summed
   * afterwards), the chunks' own channels-first copies would cost as much as that gains.
   */
  private dyTimesRows(dy: SymbolicTensor, [rows, columns]: [string, number]): string {
    const [, out, h, w] = dy.shape;
    const chunks = rowSumChunks(out, columns, h * w);
    if (chunks === undefined) return this.graph.node('Gemm', [this.values.channelsFirst(dy), rows]);
    const dyRows = this.graph.node('Reshape', [this.values.channelsLast(dy), this.int64s([-1, out])]);
    const chunked = (matrix: string, width: number) => this.graph.node('Reshape', [matrix, this.int64s([chunks, -1, width])]);
    const dyT = this.graph.node('Transpose', [chunked(dyRows, out)], { attributes: [attribute.ints('perm', [0, 2, 1])] });
    const partial = this.graph.node('MatMul', [dyT, chunked(rows, columns)]);
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
    const scaled = this.graph.node('Mul', [this.values.plain(dy), reciprocal]);
    const poolAsConv = { strides: attrs.strides, pads: attrs.pads, dilations: [1, 1] as const, groups: c };
    const spread = this.graph.node('ConvTranspose', [scaled, ones], {
      attributes: [
        ...convAttributes(attrs.kernel, poolAsConv),
        attribute.ints('output_padding', transposedConvRemainder(inputSize, attrs.kernel, poolAsConv)),
      ],
    });
    return this.values.create([n, c, ...inputSize], { plain: spread });
  }

  maxPool(x: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    return this.plainNode('MaxPool', [x], pooledShape(x.shape, attrs), poolAttributes(attrs));
  }

  /** Gathers dx at the flat index ONNX Runtime's MaxPool reports for each window (its first maximum). */
  maxPoolJvp(x: SymbolicTensor, dx: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    if (!sameShape(x.shape, dx.shape)) throw new Error(`tangent ${describeShape(dx.shape)} differs from input ${describeShape(x.shape)}`);
    const flatTangent = this.graph.node('Reshape', [this.values.plain(dx), this.int64s([-1])]);
    const gathered = this.graph.node('Gather', [flatTangent, this.maxPoolArgmax(x, attrs)], { attributes: [attribute.int('axis', 0)] });
    return this.values.create(pooledShape(x.shape, attrs), { plain: gathered });
  }

  /** Scatter-adds dy into zeros at each window's first maximum (windows overlap, so indices repeat). */
  maxPoolBackprop(x: SymbolicTensor, dy: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    const pooled = pooledShape(x.shape, attrs);
    if (!sameShape(pooled, dy.shape))
      throw new Error(`dy ${describeShape(dy.shape)} differs from the pooled shape ${describeShape(pooled)}`);
    const flat = this.int64s([-1]);
    const flatInput = this.graph.node('Reshape', [this.values.plain(x), flat]);
    const zeros = this.graph.node('ConstantOfShape', [this.graph.node('Shape', [flatInput])], {
      attributes: [attribute.tensor('value', floatTensorProto('zero', hostTensor([1], [0])))],
    });
    const scattered = this.graph.node(
      'ScatterElements',
      [zeros, this.graph.node('Reshape', [this.maxPoolArgmax(x, attrs), flat]), this.graph.node('Reshape', [this.values.plain(dy), flat])],
      { attributes: [attribute.int('axis', 0), attribute.string('reduction', 'add')] },
    );
    return this.values.create(x.shape, { plain: this.graph.node('Reshape', [scattered, this.int64s(x.shape)]) });
  }

  toStorageOrder(x: SymbolicTensor): SymbolicTensor {
    if (!this.storesBlocked(x)) return toStorageOrderComposite(this, x);
    // NCHWc memory in blocks of 16 is the storage order: the blocked value, read as if plain.
    return this.values.create(x.shape, { plain: this.values.blocked(x) });
  }

  fromStorageOrder(x: SymbolicTensor): SymbolicTensor {
    if (!this.storesBlocked(x)) return fromStorageOrderComposite(this, x);
    return this.values.create(x.shape, { blocked: this.values.plain(x) });
  }

  /** Whether the storage order of x is this trace's NCHWc layout (blocks of 16, no channel padding). */
  private storesBlocked(x: SymbolicTensor): boolean {
    return this.blocked?.block === STORAGE_BLOCK && storedBlocked(x.shape);
  }

  private plainNode(
    opType: string,
    inputs: readonly SymbolicTensor[],
    shape: readonly number[],
    attributes: AttributeProto[] = [],
    extraInputs: readonly string[] = [],
  ): SymbolicTensor {
    return this.values.create(shape, {
      plain: this.graph.node(opType, [...inputs.map((x) => this.values.plain(x)), ...extraInputs], { attributes }),
    });
  }

  /**
   * An elementwise op with NumPy broadcasting. When an operand lives blocked and the result can, the
   * op runs on blocked data (per-channel or per-pixel broadcasts through 5-D views). A scalar against a tensor whose last axis is 1 is applied to flat views (the
   * reshapes are free): ONNX Runtime's broadcasting loops over the innermost axis, and crawls when that
   * axis has size 1, as in a [O, C, 1, 1] filter times a scalar.
   */
  private elementwise(opType: string, given: readonly SymbolicTensor[]): SymbolicTensor {
    const shape = given.map((x) => x.shape).reduce((a, b) => broadcastShapes(a, b));
    if (opType === 'Mul' && given.length === 2) {
      const conjunction = this.conjunction(given[0], given[1]);
      if (conjunction) return conjunction;
      const uniform = given.findIndex((x) => this.uniformConstants.has(x));
      if (uniform >= 0) return this.timesUniform(given[1 - uniform], given[uniform], shape);
    }
    const operands = given.map((x, i) =>
      this.smallWherever(
        x,
        given.filter((_, j) => j !== i).map((y) => y.shape),
        shape,
      ),
    );
    return this.writeElementwise(opType, operands, shape);
  }

  /** A pending broadcast enters an elementwise op as its small value wherever NumPy broadcasting gives the same result. */
  private smallWherever(x: SymbolicTensor, otherShapes: readonly (readonly number[])[], shape: readonly number[]): SymbolicTensor {
    const small = this.values.deferred(x)?.small;
    if (!small) return x;
    return sameShape(
      otherShapes.reduce((a, b) => broadcastShapes(a, b), small.shape),
      shape,
    )
      ? small
      : x;
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
    return this.values.defer(shape, { small: scaled, write: () => this.writeElementwise('Mul', [x, uniform], shape) });
  }

  private writeElementwise(opType: string, operands: readonly SymbolicTensor[], shape: readonly number[]): SymbolicTensor {
    const emit = (names: string[]) => this.graph.node(opType, names);
    // Blocked when an operand lives only blocked, or when every full-size operand is blocked already.
    const fullSize = operands.filter((x) => sameShape(x.shape, shape));
    const inBlocks =
      this.blocked?.holds(shape) === true &&
      (operands.some((x) => this.values.awayFromPlain(x)) ||
        (fullSize.length > 0 && fullSize.every((x) => this.values.layoutsOf(x).blocked !== undefined)));
    const flat = shape.at(-1) === 1 && operands.some((x) => x.shape.length === 0);
    if (operands.every((x) => x.shape.length === 0 || sameShape(x.shape, shape)) && (flat || inBlocks)) {
      const name = (x: SymbolicTensor) =>
        x.shape.length === 0 ? this.values.plain(x) : inBlocks ? this.values.blocked(x) : this.values.plain(x);
      if (!flat) {
        const blocked = emit(operands.map(name));
        if (opType === 'Add' && operands.every((x) => sameShape(x.shape, shape))) this.graph.markSameShapeAdd(blocked);
        return this.values.create(shape, { blocked });
      }
      const flatShape = this.int64s([-1]);
      const names = operands.map((x) => (x.shape.length === 0 ? name(x) : this.graph.node('Reshape', [name(x), flatShape])));
      const result = this.graph.node('Reshape', [emit(names), this.int64s(shape.map((d) => (d === BATCH ? -1 : d)))]);
      return this.values.create(shape, inBlocks ? { blocked: result } : { plain: result });
    }
    if (inBlocks) {
      const scaled = opType === 'Mul' ? this.timesPerImageChannel(operands, shape) : undefined;
      if (scaled) return scaled;
      const views = operands.map((x) => this.values.blockedView(x, shape));
      if (views.every((v) => v !== undefined))
        return this.values.create(shape, { blocked: this.values.requireBlocked().unview(emit(views as string[]), shape) });
    }
    return this.values.create(shape, { plain: emit(operands.map((x) => this.values.plain(x))) });
  }

  /**
   * A full-size blocked operand times a per-image, per-channel [n, C, 1, 1] one (a pooled gradient
   * spread over the pixels, then masked) as BlockedLayout.timesPerImageChannel, when the batch is fixed.
   */
  private timesPerImageChannel(operands: readonly SymbolicTensor[], shape: readonly number[]): SymbolicTensor | undefined {
    if (operands.length !== 2 || shape.length !== 4) return undefined;
    const factors = operands.findIndex((x) => sameShape(x.shape, [shape[0], shape[1], 1, 1]));
    const full = operands[1 - factors];
    if (factors < 0 || !sameShape(full.shape, shape) || sameShape(full.shape, operands[factors].shape)) return undefined;
    if (shape[0] === BATCH) {
      this.lowersFasterPerBatchSize = true;
      return undefined;
    }
    const blocked = this.values
      .requireBlocked()
      .timesPerImageChannel(this.values.blocked(full), this.values.plain(operands[factors]), shape);
    return this.values.create(shape, { blocked });
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
    // A per-channel sum (a conv's bias gradient) of a value laid out channels-first already (for its
    // filter gradient) reduces contiguous rows: [256, 3136] takes a third of the time of NHWC or NCHWc.
    const channelsFirst = this.values.own(x).channelsFirst;
    if (channelsFirst !== undefined && spatial && reduced.includes(0)) {
      return this.values.create(shape, { plain: this.graph.node('Reshape', [emit(channelsFirst, [1]), this.int64s(shape)]) });
    }
    if (this.blocked && spatial && this.values.awayFromPlain(x) && this.blocked.holds(x.shape)) {
      const pixels = emit(this.blocked.view(this.values.blocked(x), x.shape), [2, 3]);
      const all = reduced.includes(0) ? emit(pixels, [0]) : pixels;
      return this.values.create(shape, { plain: this.graph.node('Reshape', [all, this.int64s(shape.map((d) => (d === BATCH ? -1 : d)))]) });
    }
    return this.values.create(shape, { plain: emit(this.values.plain(x), reduced) });
  }

  private int64s(values: readonly number[]): string {
    return this.graph.int64s(values);
  }

  /** The im2col matrix of x for a conv (groups 1), [N·Ho·Wo, kh·kw·C] with tap-major columns, built once per x and geometry. */
  private columns(x: SymbolicTensor, geometry: ConvGeometry): string {
    const key = `${this.values.key(x)} ${JSON.stringify(geometry)}`;
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
    const nhwc = this.values.channelsLast(x);
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
    const key = `${this.values.key(x)} ${JSON.stringify(attrs)}`;
    let indices = this.maxPoolIndices.get(key);
    if (!indices) {
      indices = this.graph.nodeOutputs('MaxPool', [this.values.plain(x)], 2, { attributes: poolAttributes(attrs) })[1];
      this.maxPoolIndices.set(key, indices);
    }
    return indices;
  }
}
