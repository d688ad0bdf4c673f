import { formatShape, sizeOf } from '@gradfeat/core/engine';
import {
  binaryConst,
  broadcastShapes,
  type ConstTensor,
  concatConst,
  concatenatedShape,
  constTensor,
  gatherConst,
  gatheredShape,
  integers,
  normalizeAxis,
  resolveSliceRange,
  scalarValue,
  sliceConst,
  transposeConst,
} from './constant.js';
import { kindOfDataType, type OnnxNode } from './proto.js';

/**
 * Constant folding of the shape computations exporters emit (PyTorch's F.pad and view(x.size(0), -1),
 * for instance): each rule evaluates one ONNX op over constant inputs. Inputs omitted in the file are
 * undefined. A rule claims its result's shape from the budget before computing it. Errors need not
 * name the node; the importer adds it.
 */
export interface FoldRule {
  /** Attributes the rule understands; any other one on the node is an error. */
  readonly attributes: readonly string[];
  fold(node: OnnxNode, inputs: readonly (ConstTensor | undefined)[], budget: FoldBudget): ConstTensor;
}

/** Folding is for shape computations; a constant this large means a data path slipped in. */
const MAX_FOLDED_ELEMENTS = 1 << 24;

/**
 * What folding may compute over one import: one constant of at most MAX_FOLDED_ELEMENTS values, and
 * all of them together at most that plus two values per byte of the file (weights folded through a
 * Transpose or Cast), so that time and memory stay bounded by the file's size whatever its graph.
 */
export class FoldBudget {
  private used = 0;
  private readonly total: number;

  constructor(fileBytes: number) {
    this.total = MAX_FOLDED_ELEMENTS + 2 * fileBytes;
  }

  /** Takes room for a constant of `shape`, or throws before anything of that size is computed. */
  claim(shape: readonly number[]): void {
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new Error(`would fold a constant of invalid shape [${shape.join(', ')}]`);
    const values = shape.reduce((product, d) => product * d, 1);
    if (values > MAX_FOLDED_ELEMENTS) {
      throw new Error(
        `would fold a constant of shape [${shape.join(', ')}] (${values} values, more than ${MAX_FOLDED_ELEMENTS}); only shape computations are folded`,
      );
    }
    if (this.used + values > this.total) {
      throw new Error(
        `folded constants would exceed ${this.total} values in all, more than a model of this size needs for its shape computations`,
      );
    }
    this.used += values;
  }
}

function required(inputs: readonly (ConstTensor | undefined)[], index: number, what: string): ConstTensor {
  const input = inputs[index];
  if (!input) throw new Error(`input ${index} (${what}) is missing`);
  return input;
}

function binary(op: (x: number, y: number) => number): FoldRule {
  return {
    attributes: [],
    fold(_node, inputs, budget) {
      const [a, b] = [required(inputs, 0, 'A'), required(inputs, 1, 'B')];
      budget.claim(broadcastShapes(a.shape, b.shape));
      return binaryConst(a, b, op);
    },
  };
}

/** The value of ONNX Shape: the dimensions from `start` to `end` (opset 15 attributes, Python-style). */
export function shapeValue(node: OnnxNode, shape: readonly number[]): ConstTensor {
  const rank = shape.length;
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + rank : i, 0), rank);
  const dims = shape.slice(clamp(node.attributes.int('start', 0)), clamp(node.attributes.int('end', rank)));
  return constTensor('int', [dims.length], dims);
}

/** Axes of Squeeze/Unsqueeze: an attribute before opset 13, an optional input since. */
function axesOf(node: OnnxNode, input: ConstTensor | undefined): number[] | undefined {
  return input ? integers(input, 'axes') : node.attributes.ints('axes');
}

/** A tensor whose shape is computed from the input's shape, with the data unchanged. */
function withShape(x: ConstTensor, shape: readonly number[]): ConstTensor {
  return { kind: x.kind, shape: [...shape], data: x.data };
}

/** Resolves ONNX Reshape's target: 0 copies the input's size on that axis (unless allowzero), -1 is inferred. */
function reshapeTarget(inputShape: readonly number[], target: readonly number[], allowZero: boolean): number[] {
  const copied = target.map((d, i) => (d === 0 && !allowZero ? inputShape[i] : d));
  if (copied.some((d) => d === undefined || d < -1) || copied.filter((d) => d === -1).length > 1) {
    throw new Error(`reshape target [${target.join(', ')}] is invalid for input ${formatShape(inputShape)}`);
  }
  const known = sizeOf(copied.filter((d) => d !== -1));
  const total = sizeOf(inputShape);
  const resolved = copied.map((d) => (d === -1 ? total / known : d));
  if (!Number.isInteger(sizeOf(resolved)) || sizeOf(resolved) !== total) {
    throw new Error(`cannot reshape ${formatShape(inputShape)} to [${target.join(', ')}]`);
  }
  return resolved;
}

/** Slice's starts, ends, axes and steps: attributes before opset 10, inputs since. Not yet clamped. */
export interface SliceParameters {
  readonly starts: readonly number[];
  readonly ends: readonly number[];
  readonly axes: readonly number[];
  readonly steps: readonly number[];
}

export function sliceParameters(node: OnnxNode, inputs: readonly (ConstTensor | undefined)[], rank: number): SliceParameters {
  const fromInputs = inputs.length > 1;
  const starts = fromInputs ? integers(required(inputs, 1, 'starts'), 'starts') : node.attributes.ints('starts');
  const ends = fromInputs ? integers(required(inputs, 2, 'ends'), 'ends') : node.attributes.ints('ends');
  if (!starts || !ends) throw new Error("needs 'starts' and 'ends'");
  const axesValue = fromInputs ? inputs[3] && integers(inputs[3], 'axes') : node.attributes.ints('axes');
  const axes = (axesValue ?? starts.map((_, i) => i)).map((a) => normalizeAxis(a, rank, 'slice axis'));
  const steps = inputs[4] ? integers(inputs[4], 'steps') : starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    throw new Error(
      `starts, ends, axes and steps must have one entry each, got ${starts.length}, ${ends.length}, ${axes.length}, ${steps.length}`,
    );
  }
  if (new Set(axes).size !== axes.length) throw new Error(`slice axes [${axes.join(', ')}] repeat an axis`);
  return { starts, ends, axes, steps };
}

export const FOLD_RULES: Readonly<Record<string, FoldRule>> = {
  Identity: { attributes: [], fold: (_node, inputs) => required(inputs, 0, 'input') },
  Shape: { attributes: ['start', 'end'], fold: (node, inputs) => shapeValue(node, required(inputs, 0, 'data').shape) },
  Add: binary((x, y) => x + y),
  Sub: binary((x, y) => x - y),
  Mul: binary((x, y) => x * y),
  Div: binary((x, y) => x / y),
  Cast: {
    attributes: ['to', 'saturate'],
    fold(node, inputs, budget) {
      const x = required(inputs, 0, 'input');
      const kind = kindOfDataType(node.attributes.int('to'), "attribute 'to'");
      budget.claim(x.shape);
      return constTensor(kind, x.shape, kind === 'int' ? Array.from(x.data, Math.trunc) : x.data);
    },
  },
  Gather: {
    attributes: ['axis'],
    fold(node, inputs, budget) {
      const data = required(inputs, 0, 'data');
      const indices = required(inputs, 1, 'indices');
      const axis = normalizeAxis(node.attributes.int('axis', 0), data.shape.length, 'axis');
      budget.claim(gatheredShape(data, indices, axis));
      return gatherConst(data, indices, axis);
    },
  },
  ConstantOfShape: {
    attributes: ['value'],
    fold(node, inputs, budget) {
      const shape = integers(required(inputs, 0, 'shape'), 'shape');
      budget.claim(shape);
      const value = node.attributes.tensor('value');
      const fill = value ? scalarValue(value, "attribute 'value'") : 0;
      return { kind: value?.kind ?? 'float', shape, data: new Float64Array(sizeOf(shape)).fill(fill) };
    },
  },
  Concat: {
    attributes: ['axis'],
    fold(node, inputs, budget) {
      const parts = inputs.filter((x): x is ConstTensor => x !== undefined);
      if (parts.length === 0) throw new Error('has no inputs');
      const axis = normalizeAxis(node.attributes.int('axis'), parts[0].shape.length, 'axis');
      budget.claim(concatenatedShape(parts, axis));
      return concatConst(parts, axis);
    },
  },
  Reshape: {
    attributes: ['allowzero'],
    fold(node, inputs) {
      const data = required(inputs, 0, 'data');
      const target = integers(required(inputs, 1, 'shape'), 'shape');
      return withShape(data, reshapeTarget(data.shape, target, node.attributes.int('allowzero', 0) === 1));
    },
  },
  Transpose: {
    attributes: ['perm'],
    fold(node, inputs, budget) {
      const data = required(inputs, 0, 'data');
      budget.claim(data.shape);
      const perm = node.attributes.ints('perm') ?? data.shape.map((_, i) => data.shape.length - 1 - i);
      return transposeConst(data, perm);
    },
  },
  Unsqueeze: {
    attributes: ['axes'],
    fold(node, inputs) {
      const data = required(inputs, 0, 'data');
      const axes = axesOf(node, inputs[1]);
      if (!axes) throw new Error("needs 'axes'");
      const rank = data.shape.length + axes.length;
      const inserted = new Set(axes.map((a) => normalizeAxis(a, rank, 'axis')));
      const remaining = [...data.shape];
      return withShape(
        data,
        Array.from({ length: rank }, (_, i) => (inserted.has(i) ? 1 : (remaining.shift() as number))),
      );
    },
  },
  Squeeze: {
    attributes: ['axes'],
    fold(node, inputs) {
      const data = required(inputs, 0, 'data');
      const axes = axesOf(node, inputs[1])?.map((a) => normalizeAxis(a, data.shape.length, 'axis'));
      const removed = new Set(axes ?? data.shape.flatMap((d, i) => (d === 1 ? [i] : [])));
      for (const axis of removed) {
        if (data.shape[axis] !== 1) throw new Error(`cannot squeeze axis ${axis} of size ${data.shape[axis]}`);
      }
      return withShape(
        data,
        data.shape.filter((_, i) => !removed.has(i)),
      );
    },
  },
  Slice: {
    attributes: ['starts', 'ends', 'axes'],
    fold(node, inputs, budget) {
      const data = required(inputs, 0, 'data');
      const { starts, ends, axes, steps } = sliceParameters(node, inputs, data.shape.length);
      const ranges = data.shape.map((size) => resolveSliceRange(size, 0, size, 1));
      axes.forEach((axis, i) => {
        ranges[axis] = resolveSliceRange(data.shape[axis], starts[i], ends[i], steps[i]);
      });
      budget.claim(ranges.map((range) => range.count));
      return sliceConst(data, ranges);
    },
  },
};
