import type { Kernels } from '../backend/kernels.js';
import { BATCH, type Shape } from '../ir/graph.js';
import { formatShape, sizeOf } from '../tensor.js';
import { addTangents, defineLinearOp, defineOp, expectInputs, isZero, type OpContext, type Tangent } from './rule.js';

/** Residual addition: linear, and a zero tangent on one branch costs nothing. */
export const add = defineOp({
  op: 'Add',
  params: {},
  residuals: {},
  inferShape(inputShapes, _attrs, _params, node) {
    expectInputs(node, inputShapes, 2);
    if (formatShape(inputShapes[0]) !== formatShape(inputShapes[1])) {
      throw new Error(`node '${node.name}' (Add): input shapes ${formatShape(inputShapes[0])} and ${formatShape(inputShapes[1])} differ`);
    }
    return inputShapes[0];
  },
  forward: ({ k, inputs }) => k.add(inputs[0], inputs[1]),
  jvp: ({ k }, tangents) => addTangents(k, tangents),
  backward: (_ctx, cotangent, wanted) => ({ inputs: wanted.inputs.map((w) => (w ? cotangent : undefined)), params: {} }),
});

/** Identity (ONNX Identity, Dropout at inference). */
export const identity = defineLinearOp({
  op: 'Identity',
  inferShape: (inputShapes, _attrs, _params, node) => {
    expectInputs(node, inputShapes, 1);
    return inputShapes[0];
  },
  apply: (_ctx, [x]) => x,
  transpose: (_ctx, cotangent) => [cotangent],
});

/** Flatten to [N, rest]. */
export const flatten = defineLinearOp({
  op: 'Flatten',
  inferShape(inputShapes, _attrs, _params, node) {
    expectInputs(node, inputShapes, 1);
    return [inputShapes[0][0], sizeOf(inputShapes[0].slice(1))];
  },
  apply: ({ k, outputShape }, [x]) => k.reshape(x, [BATCH, ...outputShape.slice(1)]),
  transpose: ({ k, inputShapes }, cotangent) => [k.reshape(cotangent, [BATCH, ...inputShapes[0].slice(1)])],
});

/** Reshape to a fixed per-sample shape. */
export const reshape = defineLinearOp({
  op: 'Reshape',
  inferShape(inputShapes, { shape }, _params, node) {
    expectInputs(node, inputShapes, 1);
    const total = sizeOf(inputShapes[0].slice(1));
    const known = sizeOf(shape.filter((d) => d !== -1));
    const free = shape.filter((d) => d === -1).length;
    const resolved = shape.map((d) => (d === -1 ? total / known : d));
    if (free > 1 || sizeOf(resolved) !== total || !Number.isInteger(sizeOf(resolved))) {
      throw new Error(
        `node '${node.name}' (Reshape): cannot reshape per-sample ${formatShape(inputShapes[0].slice(1))} to ${formatShape(shape)}`,
      );
    }
    return [inputShapes[0][0], ...resolved];
  },
  apply: ({ k, outputShape }, [x]) => k.reshape(x, [BATCH, ...outputShape.slice(1)]),
  transpose: ({ k, inputShapes }, cotangent) => [k.reshape(cotangent, [BATCH, ...inputShapes[0].slice(1)])],
});

/** Zero padding of the non-batch axes, e.g. ResNet "option A" channel padding or ZeroPadding2D. */
export const pad = defineLinearOp({
  op: 'Pad',
  inferShape(inputShapes, { pads }, _params, node) {
    expectInputs(node, inputShapes, 1);
    const rank = inputShapes[0].length - 1;
    if (pads.length !== 2 * rank || pads.some((p) => p < 0)) {
      throw new Error(
        `node '${node.name}' (Pad): pads must be ${2 * rank} non-negative numbers (begins then ends of axes 1..${rank}), got [${pads.join(', ')}]`,
      );
    }
    return [inputShapes[0][0], ...inputShapes[0].slice(1).map((d, i) => d + pads[i] + pads[i + rank])];
  },
  apply: ({ k, attrs }, [x]) => k.pad(x, withBatchAxis(attrs.pads)),
  transpose({ k, attrs, inputShapes }, cotangent) {
    const inner = inputShapes[0].slice(1);
    const rank = inner.length;
    const begins = [0, ...attrs.pads.slice(0, rank)];
    const ends = [Number.MAX_SAFE_INTEGER, ...inner.map((d, i) => attrs.pads[i] + d)];
    return [
      k.slice(
        cotangent,
        begins,
        ends,
        begins.map(() => 1),
      ),
    ];
  },
});

/** Pads over non-batch axes → pads over all axes (nothing added to the batch). */
function withBatchAxis(pads: readonly number[]): number[] {
  const rank = pads.length / 2;
  return [0, ...pads.slice(0, rank), 0, ...pads.slice(rank)];
}

/** Strided slicing of non-batch axes, e.g. the spatial subsampling of ResNet "option A" shortcuts. */
export const slice = defineLinearOp({
  op: 'Slice',
  inferShape(inputShapes, { begins, ends, steps }, _params, node) {
    expectInputs(node, inputShapes, 1);
    const inner = inputShapes[0].slice(1);
    if (begins.length !== inner.length || ends.length !== inner.length || steps.length !== inner.length) {
      throw new Error(`node '${node.name}' (Slice): begins/ends/steps need one entry per non-batch axis (${inner.length})`);
    }
    const out = inner.map((d, i) => {
      const end = Math.min(ends[i], d);
      if (begins[i] < 0 || steps[i] < 1 || end <= begins[i]) {
        throw new Error(
          `node '${node.name}' (Slice): axis ${i + 1} of size ${d} cannot be sliced from ${begins[i]} to ${ends[i]} by ${steps[i]}`,
        );
      }
      return Math.ceil((end - begins[i]) / steps[i]);
    });
    return [inputShapes[0][0], ...out];
  },
  apply: ({ k, attrs }, [x]) => k.slice(x, [0, ...attrs.begins], [Number.MAX_SAFE_INTEGER, ...attrs.ends], [1, ...attrs.steps]),
  transpose: ({ k, attrs, inputShapes, outputShape }, cotangent) => [
    sliceTranspose(k, cotangent, inputShapes[0], outputShape, attrs.begins, attrs.steps),
  ],
});

/**
 * Scatters a slice's cotangent back into zeros of the input's shape, one axis at a time: a step s is
 * undone by interleaving s−1 zeros (reshape to [m,1], pad to [m,s], reshape to m·s), then the begin
 * offset and the remainder are padded (or cropped) on.
 */
function sliceTranspose<T>(
  k: Kernels<T>,
  cotangent: T,
  inputShape: Shape,
  outputShape: Shape,
  begins: readonly number[],
  steps: readonly number[],
): T {
  let current = cotangent;
  const shape = [BATCH, ...outputShape.slice(1)];
  for (let axis = 1; axis < shape.length; axis++) {
    const step = steps[axis - 1];
    const count = shape[axis];
    if (step > 1) {
      const split = [...shape.slice(0, axis + 1), 1, ...shape.slice(axis + 1)];
      const interleave = new Array<number>(2 * split.length).fill(0);
      interleave[split.length + axis + 1] = step - 1;
      const padded = k.pad(k.reshape(current, split), interleave);
      shape[axis] = count * step;
      current = k.reshape(padded, shape);
    }
    const before = begins[axis - 1];
    const after = inputShape[axis] - before - shape[axis];
    const pads = new Array<number>(2 * shape.length).fill(0);
    pads[axis] = before;
    if (after >= 0) {
      pads[shape.length + axis] = after;
      current = k.pad(current, pads);
    } else {
      current = k.pad(current, pads);
      const ends = shape.map(() => Number.MAX_SAFE_INTEGER);
      ends[axis] = inputShape[axis];
      current = k.slice(
        current,
        shape.map(() => 0),
        ends,
        shape.map(() => 1),
      );
    }
    shape[axis] = inputShape[axis];
  }
  return current;
}

/** Concatenation along an axis. */
export const concat = defineLinearOp({
  op: 'Concat',
  inferShape(inputShapes, { axis }, _params, node) {
    if (inputShapes.length < 1) throw new Error(`node '${node.name}' (Concat) needs at least one input`);
    const rank = inputShapes[0].length;
    if (axis < 1 || axis >= rank) throw new Error(`node '${node.name}' (Concat): axis ${axis} must be a non-batch axis of rank ${rank}`);
    for (const s of inputShapes) {
      if (s.length !== rank || s.some((d, i) => i !== axis && i !== 0 && d !== inputShapes[0][i])) {
        throw new Error(`node '${node.name}' (Concat): shapes ${inputShapes.map(formatShape).join(', ')} differ outside axis ${axis}`);
      }
    }
    const out = [...inputShapes[0]];
    out[axis] = inputShapes.reduce((total, s) => total + s[axis], 0);
    return out;
  },
  apply: ({ k, attrs }, xs) => k.concat(xs, attrs.axis),
  // Zero tangents become zero padding of their neighbours along the axis.
  applyToTangents<T>({ k, attrs, inputShapes }: OpContext<T, 'Concat'>, tangents: readonly Tangent<T>[]): T {
    const rank = inputShapes[0].length;
    const padAlong = (x: T, before: number, after: number) => {
      const pads = new Array<number>(2 * rank).fill(0);
      pads[attrs.axis] = before;
      pads[rank + attrs.axis] = after;
      return before + after > 0 ? k.pad(x, pads) : x;
    };
    const pieces: T[] = [];
    let zerosBefore = 0;
    tangents.forEach((tangent, i) => {
      if (isZero(tangent)) {
        zerosBefore += inputShapes[i][attrs.axis];
        return;
      }
      pieces.push(padAlong(tangent, zerosBefore, 0));
      zerosBefore = 0;
    });
    pieces[pieces.length - 1] = padAlong(pieces[pieces.length - 1], 0, zerosBefore);
    return pieces.length === 1 ? pieces[0] : k.concat(pieces, attrs.axis);
  },
  transpose({ k, attrs, inputShapes }, cotangent, wanted) {
    let offset = 0;
    return inputShapes.map((s, i) => {
      const begins = s.map(() => 0);
      const ends = s.map(() => Number.MAX_SAFE_INTEGER);
      begins[attrs.axis] = offset;
      ends[attrs.axis] = offset + s[attrs.axis];
      offset += s[attrs.axis];
      return wanted.inputs[i]
        ? k.slice(
            cotangent,
            begins,
            ends,
            s.map(() => 1),
          )
        : undefined;
    });
  },
});
