import {
  BATCH,
  type Conv2DAttrs,
  type HostTensor,
  hostTensor,
  type Kernels,
  type Pads4,
  type Pair,
  type PoolAttrs,
  sameShape,
  windowedSize,
} from '@gradfeat/core';
import {
  type AttributeProto,
  attribute,
  encodeModel,
  FLOAT_DATA_TYPE,
  floatTensorProto,
  floatValueInfo,
  int64TensorProto,
  type ModelContents,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';
import { broadcastShapes, describeShape, normalizeAxes, resolveReshape } from './symbolic-shape.js';

/** A value of the graph being traced: its ONNX name and static shape (-1 for the batch axis). */
export interface SymbolicTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Slice ends at least this large mean "to the end of the axis" (core writes Number.MAX_SAFE_INTEGER). */
const TO_THE_END = 2 ** 31 - 1;

/** Output pixels per image up to which a run-time filter is applied as GEMMs over the batch (see conv2d). */
const SMALL_IMAGE = 256;

/**
 * Records kernel calls as an ONNX graph instead of running them. Every value's static shape is
 * tracked so that errors surface while tracing, at the kernel that caused them, rather than as an
 * ONNX Runtime failure at run time.
 */
export class OnnxGraphBuilder implements Kernels<SymbolicTensor> {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly graphInputs: ValueInfoProto[] = [];
  private readonly graphOutputs: ValueInfoProto[] = [];
  private readonly usedNames = new Set<string>();
  private readonly owned = new WeakSet<SymbolicTensor>();
  private readonly constants = new Map<HostTensor, SymbolicTensor>();
  private readonly scalars = new Map<number, SymbolicTensor>();
  private readonly derivedConstants = new Map<string, SymbolicTensor>();
  private readonly maxPoolIndices = new Map<string, string>();
  /** im2col matrices by input value and conv geometry: a conv with a run-time filter and its filter gradient share one. */
  private readonly columnMatrices = new Map<string, string>();
  /** Values computed from initializers alone, which ONNX Runtime folds into constants. */
  private readonly constantValues = new Set<string>();
  private nameCounter = 0;

  input(name: string, shape: readonly number[]): SymbolicTensor {
    if (this.usedNames.has(name)) throw new Error(`graph input '${name}' is declared twice`);
    this.usedNames.add(name);
    this.graphInputs.push(floatValueInfo(name, shape));
    return this.value(name, shape);
  }

  /** Makes `value` a graph output; returns the ONNX name, which is `name` unless that is taken. */
  output(name: string, value: SymbolicTensor): string {
    let outputName = name;
    for (let suffix = 1; this.usedNames.has(outputName); suffix++) outputName = `${name}_output${suffix > 1 ? suffix : ''}`;
    this.usedNames.add(outputName);
    this.nodes.push({ opType: 'Identity', name: outputName, input: [this.nameOf(value)], output: [outputName] });
    this.graphOutputs.push(floatValueInfo(outputName, value.shape));
    return outputName;
  }

  encode(model: Pick<ModelContents, 'graphName' | 'docString' | 'metadata'>): Uint8Array {
    return encodeModel({
      ...model,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.graphInputs,
      outputs: this.graphOutputs,
    });
  }

  // ---- kernels ----

  shape(x: SymbolicTensor): readonly number[] {
    this.nameOf(x);
    return x.shape;
  }

  constant(value: HostTensor): SymbolicTensor {
    let handle = this.constants.get(value);
    if (!handle) {
      handle = this.initializer(floatTensorProto(this.freshName('const'), value), value.shape);
      this.constants.set(value, handle);
    }
    return handle;
  }

  scalar(value: number): SymbolicTensor {
    let handle = this.scalars.get(value);
    if (!handle) {
      handle = this.initializer(floatTensorProto(this.freshName('scalar'), hostTensor([], [value])), []);
      this.scalars.set(value, handle);
    }
    return handle;
  }

  add(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.binary('Add', a, b);
  }
  sub(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.binary('Sub', a, b);
  }
  mul(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.binary('Mul', a, b);
  }
  div(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.binary('Div', a, b);
  }
  maximum(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.binary('Max', a, b);
  }
  minimum(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.binary('Min', a, b);
  }
  greater(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.comparison('Greater', a, b);
  }
  less(a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.comparison('Less', a, b);
  }
  exp(x: SymbolicTensor): SymbolicTensor {
    return this.apply('Exp', [x], x.shape);
  }
  log(x: SymbolicTensor): SymbolicTensor {
    return this.apply('Log', [x], x.shape);
  }
  abs(x: SymbolicTensor): SymbolicTensor {
    return this.apply('Abs', [x], x.shape);
  }
  sqrt(x: SymbolicTensor): SymbolicTensor {
    return this.apply('Sqrt', [x], x.shape);
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
    return this.apply('Reshape', [x], target, [], [this.int64s(target)]);
  }

  transpose(x: SymbolicTensor, perm: readonly number[]): SymbolicTensor {
    const rank = x.shape.length;
    if (perm.length !== rank || [...perm].sort((p, q) => p - q).some((axis, i) => axis !== i)) {
      throw new Error(`[${perm.join(', ')}] is not a permutation of the ${rank} axes of ${describeShape(x.shape)}`);
    }
    if (perm.every((axis, i) => axis === i)) return x;
    return this.apply(
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
    return this.apply('Pad', [x], shape, [], [this.int64s(pads)]);
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
    return this.apply('Slice', [x], shape, [], [this.int64s(starts), this.int64s(stops), this.int64s(axes), this.int64s(strides)]);
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
    return this.apply('Concat', xs, shape, [attribute.int('axis', along)]);
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
    return this.apply(
      'Gemm',
      [a, b],
      [rows, columns],
      [attribute.int('transA', transposeA ? 1 : 0), attribute.int('transB', transposeB ? 1 : 0)],
    );
  }

  /**
   * ONNX Runtime's Conv is fastest with a constant filter, which it reorders once into its blocked
   * NCHWc layout, and on large images. A filter computed at run time (the tangent's Ẇ, or θ2 while
   * fine-tuning) on a small image is several times faster as one GEMM over an im2col matrix of the
   * whole batch than as ONNX Runtime's per-image GEMMs, which are only Ho·Wo columns wide.
   */
  conv2d(x: SymbolicTensor, w: SymbolicTensor, bias: SymbolicTensor | undefined, attrs: Conv2DAttrs): SymbolicTensor {
    const [n, c, h, width] = expectRank4(x, 'input');
    const [out, inPerGroup, kh, kw] = expectStaticFilter(w);
    if (c % attrs.groups !== 0 || out % attrs.groups !== 0 || c / attrs.groups !== inPerGroup) {
      throw new Error(`input ${describeShape(x.shape)} and filter ${describeShape(w.shape)} do not fit groups=${attrs.groups}`);
    }
    if (bias && !sameShape(bias.shape, [out])) throw new Error(`bias must be [${out}], got ${describeShape(bias.shape)}`);
    const [ho, wo] = convOutputSize([h, width], [kh, kw], attrs);
    if (this.isConstant(w) || ho * wo > SMALL_IMAGE) {
      return this.apply('Conv', bias ? [x, w, bias] : [x, w], [n, out, ho, wo], convAttributes([kh, kw], attrs));
    }
    const groups = attrs.groups;
    const outPerGroup = out / groups;
    const taps = kh * kw;
    // w as [g, O/g, kh·kw·C/g], its columns ordered (tap, channel) like the rows of the im2col matrix.
    const filterRows = this.node('Reshape', [
      this.node(
        'Transpose',
        [this.node('Reshape', [this.nameOf(w), this.int64s([groups, outPerGroup, inPerGroup, taps])])],
        [attribute.ints('perm', [0, 1, 3, 2])],
      ),
      this.int64s([groups, outPerGroup, taps * inPerGroup]),
    ]);
    const total = this.node('MatMul', [filterRows, this.columnMatrix(x, [kh, kw], attrs, [ho, wo])]);
    const outputFirst = this.node('Reshape', [total, this.int64s([out, -1, ho, wo])]);
    const y = this.node('Transpose', [outputFirst], [attribute.ints('perm', [1, 0, 2, 3])]);
    const withBias = bias ? this.node('Add', [y, this.node('Reshape', [this.nameOf(bias), this.int64s([1, out, 1, 1])])]) : y;
    return this.value(withBias, [n, out, ho, wo]);
  }

  /**
   * With stride 1 the transpose of a conv is the conv of dy with the filter flipped and its in and
   * out channels swapped, which ONNX Runtime runs (with a constant filter, folded once) much faster
   * than ConvTranspose. Strided convs keep ConvTranspose.
   */
  conv2dBackpropInput(dy: SymbolicTensor, w: SymbolicTensor, inputSize: Pair, attrs: Conv2DAttrs): SymbolicTensor {
    const [n, o, ho, wo] = expectRank4(dy, 'dy');
    const [out, inPerGroup, kh, kw] = expectStaticFilter(w);
    if (o !== out)
      throw new Error(`dy ${describeShape(dy.shape)} has ${o} channels but the filter ${describeShape(w.shape)} has ${out} outputs`);
    expectConvOutput([ho, wo], inputSize, [kh, kw], attrs);
    const { groups, dilations, pads } = attrs;
    const flippedPads = [0, 1, 2, 3].map((i) => dilations[i % 2] * ([kh, kw][i % 2] - 1) - pads[i]);
    if (attrs.strides.some((s) => s !== 1) || flippedPads.some((p) => p < 0)) {
      return this.apply(
        'ConvTranspose',
        [dy, w],
        [n, inPerGroup * groups, ...inputSize],
        [...convAttributes([kh, kw], attrs), attribute.ints('output_padding', transposedConvRemainder(inputSize, [kh, kw], attrs))],
      );
    }
    const outPerGroup = out / groups;
    const grouped = this.node('Reshape', [this.nameOf(w), this.int64s([groups, outPerGroup, inPerGroup, kh, kw])]);
    const swapped = this.node('Transpose', [grouped], [attribute.ints('perm', [0, 2, 1, 3, 4])]);
    const transposed = this.node('Reshape', [swapped, this.int64s([groups * inPerGroup, outPerGroup, kh, kw])]);
    const reversed = [this.int64s([-1, -1]), this.int64s([-TO_THE_END, -TO_THE_END]), this.int64s([2, 3]), this.int64s([-1, -1])];
    const flipped = this.value(this.node('Slice', [transposed, ...reversed]), [groups * inPerGroup, outPerGroup, kh, kw]);
    const [top, left, bottom, right] = flippedPads;
    return this.conv2d(dy, flipped, undefined, { strides: [1, 1], dilations, groups, pads: [top, left, bottom, right] });
  }

  /**
   * ONNX has no filter-gradient op. For each filter tap (i, j), dW[o,c,i,j] = Σ dy[n,o,p,q]·x[n,c,p·s+i·d,q·s+j·d]
   * over n, p, q is one matrix product with K = N·Ho·Wo: the tap's strided slice of x laid out
   * [g, C/g, K] times dy laid out [g, K, O/g]; on small images all taps at once, as the im2col matrix
   * times dy. These GEMMs are well shaped; a convolution with batch and channels swapped computes the
   * same sums as GEMMs only kh·kw columns wide, and is several times slower in ONNX Runtime.
   */
  conv2dBackpropFilter(x: SymbolicTensor, dy: SymbolicTensor, filterShape: readonly number[], attrs: Conv2DAttrs): SymbolicTensor {
    const [, c, h, width] = expectRank4(x, 'input');
    const [, o, ho, wo] = expectRank4(dy, 'dy');
    if (filterShape.length !== 4) throw new Error(`filter shape must be [out, in/groups, kh, kw], got [${filterShape.join(', ')}]`);
    const [out, inPerGroup, kh, kw] = filterShape;
    const groups = attrs.groups;
    if (out !== o || inPerGroup * groups !== c || out % groups !== 0) {
      throw new Error(
        `filter [${filterShape.join(', ')}] does not fit input ${describeShape(x.shape)}, dy ${describeShape(dy.shape)} and groups=${groups}`,
      );
    }
    expectConvOutput([ho, wo], [h, width], [kh, kw], attrs);
    const outPerGroup = out / groups;
    // dy as [g, N·Ho·Wo, O/g], summed over in the same (n, p, q) order as the taps.
    const dyGrouped = this.node('Reshape', [this.nameOf(dy), this.int64s([-1, groups, outPerGroup, ho, wo])]);
    const dyColumns = this.node('Reshape', [
      this.node('Transpose', [dyGrouped], [attribute.ints('perm', [1, 0, 3, 4, 2])]),
      this.int64s([groups, -1, outPerGroup]),
    ]);
    let taps: string;
    if (ho * wo <= SMALL_IMAGE) {
      // One GEMM over the im2col matrix (shared with a conv of the same x): [g, kh·kw·C/g, O/g].
      const product = this.node('MatMul', [this.columnMatrix(x, [kh, kw], attrs, [ho, wo]), dyColumns]);
      const tapMajor = this.node('Reshape', [product, this.int64s([groups, kh * kw, inPerGroup, outPerGroup])]);
      taps = this.node('Transpose', [tapMajor], [attribute.ints('perm', [0, 2, 3, 1])]);
    } else {
      // Large images: one GEMM per tap, so only one tap's slice of x is alive at a time.
      const perTap = this.convTaps(x, [kh, kw], attrs, [ho, wo]).map((tap) =>
        this.node('Reshape', [this.node('MatMul', [tap, dyColumns]), this.int64s([groups, inPerGroup, outPerGroup, 1])]),
      );
      taps = perTap.length === 1 ? perTap[0] : this.node('Concat', perTap, [attribute.int('axis', 3)]);
    }
    const outputFirst = this.node('Transpose', [taps], [attribute.ints('perm', [0, 2, 1, 3])]);
    return this.value(this.node('Reshape', [outputFirst, this.int64s(filterShape)]), filterShape);
  }

  /** The im2col matrix of x over the whole batch, [g, kh·kw·C/g, N·Ho·Wo] (rows tap-major), built once per x and geometry. */
  private columnMatrix(x: SymbolicTensor, kernel: Pair, attrs: Conv2DAttrs, outputSize: Pair): string {
    const key = `${this.nameOf(x)} ${kernel} ${outputSize} ${JSON.stringify(attrs)}`;
    let matrix = this.columnMatrices.get(key);
    if (matrix === undefined) {
      const taps = this.convTaps(x, kernel, attrs, outputSize);
      matrix = taps.length === 1 ? taps[0] : this.node('Concat', taps, [attribute.int('axis', 1)]);
      this.columnMatrices.set(key, matrix);
    }
    return matrix;
  }

  /**
   * What each filter tap (i, j) of a conv reads of x: x[n, c, p·s + i·d, q·s + j·d] laid out
   * [g, C/g, N·Ho·Wo], one value per tap in row-major tap order.
   */
  private convTaps(x: SymbolicTensor, kernel: Pair, attrs: Conv2DAttrs, outputSize: Pair): string[] {
    const [, c, h, width] = x.shape;
    const { groups, strides, dilations, pads } = attrs;
    const inPerGroup = c / groups;
    // x as [g, C/g, N, H, W], zero-padded only as far as the last tap reaches.
    const grouped = this.node('Reshape', [this.nameOf(x), this.int64s([-1, groups, inPerGroup, h, width])]);
    const channelsFirst = this.node('Transpose', [grouped], [attribute.ints('perm', [1, 2, 0, 3, 4])]);
    const endPads = [0, 1].map((axis) => {
      const reach = strides[axis] * (outputSize[axis] - 1) + dilations[axis] * (kernel[axis] - 1) + 1;
      return Math.max(0, reach - [h, width][axis] - pads[axis]);
    });
    const padding = [0, 0, 0, pads[0], pads[1], 0, 0, 0, endPads[0], endPads[1]];
    const padded = padding.every((p) => p === 0) ? channelsFirst : this.node('Pad', [channelsFirst, this.int64s(padding)]);
    const taps: string[] = [];
    for (let i = 0; i < kernel[0]; i++) {
      for (let j = 0; j < kernel[1]; j++) {
        const starts = [i * dilations[0], j * dilations[1]];
        const ends = [starts[0] + strides[0] * (outputSize[0] - 1) + 1, starts[1] + strides[1] * (outputSize[1] - 1) + 1];
        const tap = this.node('Slice', [padded, this.int64s(starts), this.int64s(ends), this.int64s([3, 4]), this.int64s(strides)]);
        taps.push(this.node('Reshape', [tap, this.int64s([groups, inPerGroup, -1])]));
      }
    }
    return taps;
  }

  avgPool(x: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    return this.apply('AveragePool', [x], this.pooledShape(x, attrs), [
      ...poolAttributes(attrs),
      attribute.int('count_include_pad', attrs.countIncludePad ? 1 : 0),
    ]);
  }

  /** The transpose of average pooling: dy divided by each window's divisor, spread by a depthwise ConvTranspose of ones. */
  avgPoolBackprop(dy: SymbolicTensor, inputSize: Pair, attrs: PoolAttrs): SymbolicTensor {
    const [n, c, ho, wo] = expectRank4(dy, 'dy');
    expectConvOutput([ho, wo], inputSize, attrs.kernel, { ...attrs, dilations: [1, 1] });
    const [kh, kw] = attrs.kernel;
    const reciprocal = attrs.countIncludePad
      ? this.scalar(1 / (kh * kw))
      : this.derivedConstant(`avgpool divisors ${inputSize} ${JSON.stringify(attrs)}`, (name) =>
          floatTensorProto(name, windowReciprocals(inputSize, [ho, wo], attrs)),
        );
    const ones = this.derivedConstant(`ones ${c}x${kh}x${kw}`, (name) =>
      floatTensorProto(name, hostTensor([c, 1, kh, kw], new Float32Array(c * kh * kw).fill(1))),
    );
    const scaled = this.node('Mul', [this.nameOf(dy), reciprocal.name]);
    const poolAsConv = { strides: attrs.strides, pads: attrs.pads, dilations: [1, 1] as const, groups: c };
    return this.value(
      this.node(
        'ConvTranspose',
        [scaled, ones.name],
        [
          ...convAttributes(attrs.kernel, poolAsConv),
          attribute.ints('output_padding', transposedConvRemainder(inputSize, attrs.kernel, poolAsConv)),
        ],
      ),
      [n, c, ...inputSize],
    );
  }

  maxPool(x: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    return this.apply('MaxPool', [x], this.pooledShape(x, attrs), poolAttributes(attrs));
  }

  /** Gathers dx at the flat index ONNX Runtime's MaxPool reports for each window (its first maximum). */
  maxPoolJvp(x: SymbolicTensor, dx: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    if (!sameShape(x.shape, dx.shape)) throw new Error(`tangent ${describeShape(dx.shape)} differs from input ${describeShape(x.shape)}`);
    const shape = this.pooledShape(x, attrs);
    const flatTangent = this.node('Reshape', [this.nameOf(dx), this.int64s([-1])]);
    return this.value(this.node('Gather', [flatTangent, this.maxPoolArgmax(x, attrs)], [attribute.int('axis', 0)]), shape);
  }

  /** Scatter-adds dy into zeros at each window's first maximum (windows overlap, so indices repeat). */
  maxPoolBackprop(x: SymbolicTensor, dy: SymbolicTensor, attrs: PoolAttrs): SymbolicTensor {
    const pooled = this.pooledShape(x, attrs);
    if (!sameShape(pooled, dy.shape))
      throw new Error(`dy ${describeShape(dy.shape)} differs from the pooled shape ${describeShape(pooled)}`);
    const flat = this.int64s([-1]);
    const flatInput = this.node('Reshape', [this.nameOf(x), flat]);
    const zeros = this.node(
      'ConstantOfShape',
      [this.node('Shape', [flatInput])],
      [attribute.tensor('value', floatTensorProto('zero', hostTensor([1], [0])))],
    );
    const scattered = this.node(
      'ScatterElements',
      [zeros, this.node('Reshape', [this.maxPoolArgmax(x, attrs), flat]), this.node('Reshape', [this.nameOf(dy), flat])],
      [attribute.int('axis', 0), attribute.string('reduction', 'add')],
    );
    return this.value(this.node('Reshape', [scattered, this.int64s(x.shape)]), x.shape);
  }

  // ---- helpers ----

  private value(name: string, shape: readonly number[]): SymbolicTensor {
    const handle = { name, shape: [...shape] };
    this.owned.add(handle);
    return handle;
  }

  private nameOf(x: SymbolicTensor): string {
    if (!this.owned.has(x)) {
      throw new Error(`value '${x?.name ?? String(x)}' does not belong to this trace (was it created by another program or backend?)`);
    }
    return x.name;
  }

  private isConstant(x: SymbolicTensor): boolean {
    return this.constantValues.has(this.nameOf(x));
  }

  private freshName(base: string): string {
    let name: string;
    do name = `${base}_${this.nameCounter++}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  /** Emits a node; returns the names of its outputs. */
  private node(opType: string, inputs: readonly string[], attributes: AttributeProto[] = [], outputCount = 1): string {
    return this.nodeOutputs(opType, inputs, attributes, outputCount)[0];
  }

  private nodeOutputs(opType: string, inputs: readonly string[], attributes: AttributeProto[], outputCount: number): string[] {
    const outputs = Array.from({ length: outputCount }, () => this.freshName(opType.toLowerCase()));
    if (inputs.every((input) => this.constantValues.has(input))) for (const output of outputs) this.constantValues.add(output);
    this.nodes.push({ opType, name: outputs[0], input: [...inputs], output: outputs, attribute: attributes });
    return outputs;
  }

  private apply(
    opType: string,
    inputs: readonly SymbolicTensor[],
    shape: readonly number[],
    attributes: AttributeProto[] = [],
    extraInputs: readonly string[] = [],
  ): SymbolicTensor {
    return this.value(this.node(opType, [...inputs.map((x) => this.nameOf(x)), ...extraInputs], attributes), shape);
  }

  private initializer(proto: TensorProto, shape: readonly number[]): SymbolicTensor {
    this.initializers.push(proto);
    this.constantValues.add(proto.name as string);
    return this.value(proto.name as string, shape);
  }

  /** A constant the builder makes itself (int64 shapes and axes, pooling divisors), one initializer per distinct content. */
  private derivedConstant(key: string, make: (name: string) => TensorProto): SymbolicTensor {
    let handle = this.derivedConstants.get(key);
    if (!handle) {
      const proto = make(this.freshName('const'));
      handle = this.initializer(proto, proto.dims as number[]);
      this.derivedConstants.set(key, handle);
    }
    return handle;
  }

  private int64s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.derivedConstant(`int64 [${dims}] ${values}`, (name) => int64TensorProto(name, values, dims)).name;
  }

  private binary(opType: string, a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    return this.apply(opType, [a, b], broadcastShapes(a.shape, b.shape));
  }

  private comparison(opType: string, a: SymbolicTensor, b: SymbolicTensor): SymbolicTensor {
    const flags = this.binary(opType, a, b);
    return this.value(this.node('Cast', [flags.name], [attribute.int('to', FLOAT_DATA_TYPE)]), flags.shape);
  }

  private reduce(opType: 'ReduceSum' | 'ReduceMax', x: SymbolicTensor, axes: readonly number[], keepDims: boolean): SymbolicTensor {
    const reduced = normalizeAxes(axes, x.shape.length, opType);
    if (reduced.length === 0) return x;
    const shape = keepDims ? x.shape.map((d, i) => (reduced.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !reduced.includes(i));
    const keep = attribute.int('keepdims', keepDims ? 1 : 0);
    // Opset 17 takes ReduceSum's axes as an input but ReduceMax's as an attribute.
    return opType === 'ReduceSum'
      ? this.apply(opType, [x], shape, [keep], [this.int64s(reduced)])
      : this.apply(opType, [x], shape, [keep, attribute.ints('axes', reduced)]);
  }

  private pooledShape(x: SymbolicTensor, attrs: PoolAttrs): number[] {
    const [n, c, h, w] = expectRank4(x, 'input');
    return [n, c, ...convOutputSize([h, w], attrs.kernel, { ...attrs, dilations: [1, 1] })];
  }

  /** MaxPool's second output: per window, the flat NCHW index of its first maximum (padding never wins). */
  private maxPoolArgmax(x: SymbolicTensor, attrs: PoolAttrs): string {
    const key = `${this.nameOf(x)} ${JSON.stringify(attrs)}`;
    let indices = this.maxPoolIndices.get(key);
    if (!indices) {
      indices = this.nodeOutputs('MaxPool', [x.name], poolAttributes(attrs), 2)[1];
      this.maxPoolIndices.set(key, indices);
    }
    return indices;
  }
}

function expectRank4(x: SymbolicTensor, what: string): readonly number[] {
  if (x.shape.length !== 4) throw new Error(`${what} must be NCHW (rank 4), got ${describeShape(x.shape)}`);
  return x.shape;
}

function expectStaticFilter(w: SymbolicTensor): readonly number[] {
  if (w.shape.length !== 4 || w.shape.includes(BATCH)) {
    throw new Error(`filter must be [out, in/groups, kh, kw] with known sizes, got ${describeShape(w.shape)}`);
  }
  return w.shape;
}

interface WindowAttrs {
  readonly strides: Pair;
  readonly pads: Pads4;
  readonly dilations: Pair;
}

function convOutputSize(inputSize: readonly number[], kernel: readonly number[], attrs: WindowAttrs): [number, number] {
  const [pt, pl, pb, pr] = attrs.pads;
  const rows = windowedSize(inputSize[0], kernel[0], attrs.strides[0], pt, pb, attrs.dilations[0]);
  const columns = windowedSize(inputSize[1], kernel[1], attrs.strides[1], pl, pr, attrs.dilations[1]);
  if (rows < 1 || columns < 1) throw new Error(`a ${inputSize.join('×')} input is too small for a ${kernel.join('×')} window`);
  return [rows, columns];
}

function expectConvOutput(outputSize: readonly number[], inputSize: Pair, kernel: readonly number[], attrs: WindowAttrs): void {
  const expected = convOutputSize(inputSize, kernel, attrs);
  if (outputSize[0] !== expected[0] || outputSize[1] !== expected[1]) {
    throw new Error(`a ${inputSize.join('×')} input gives ${expected.join('×')} windows, but the gradient is ${outputSize.join('×')}`);
  }
}

/**
 * Rows (columns) at the end of the input that no window reaches when the stride does not divide:
 * ConvTranspose's output_padding, which makes its output exactly the input size.
 */
function transposedConvRemainder(inputSize: Pair, kernel: Pair, attrs: WindowAttrs): number[] {
  return [0, 1].map((axis) => {
    const span = inputSize[axis] + attrs.pads[axis] + attrs.pads[axis + 2] - attrs.dilations[axis] * (kernel[axis] - 1) - 1;
    return span % attrs.strides[axis];
  });
}

function convAttributes(kernel: readonly number[], attrs: WindowAttrs & { readonly groups: number }): AttributeProto[] {
  return [
    attribute.ints('kernel_shape', kernel),
    attribute.ints('strides', attrs.strides),
    attribute.ints('pads', attrs.pads),
    attribute.ints('dilations', attrs.dilations),
    attribute.int('group', attrs.groups),
  ];
}

function poolAttributes(attrs: PoolAttrs): AttributeProto[] {
  return [attribute.ints('kernel_shape', attrs.kernel), attribute.ints('strides', attrs.strides), attribute.ints('pads', attrs.pads)];
}

/** 1 / (number of real, unpadded input positions) for every average-pooling window. */
function windowReciprocals(inputSize: Pair, outputSize: readonly number[], attrs: PoolAttrs): HostTensor {
  const [ho, wo] = outputSize;
  const data = new Float32Array(ho * wo);
  const covered = (output: number, axis: 0 | 1): number => {
    const start = output * attrs.strides[axis] - attrs.pads[axis];
    return Math.min(start + attrs.kernel[axis], inputSize[axis]) - Math.max(start, 0);
  };
  for (let p = 0; p < ho; p++) for (let q = 0; q < wo; q++) data[p * wo + q] = 1 / (covered(p, 0) * covered(q, 1));
  return hostTensor([1, 1, ho, wo], data);
}
