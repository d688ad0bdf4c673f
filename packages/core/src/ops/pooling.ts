import type { PoolAttrs, Shape } from '../ir/graph.js';
import { windowedSize } from './parametric.js';
import { defineLinearOp, defineOp, expectInputs, isZero, PRIMAL_INPUT, ZERO } from './rule.js';

function pooledShape(inputShapes: readonly Shape[], attrs: PoolAttrs, node: { name: string; op: string }): Shape {
  const [n, c, h, w] = inputShapes[0];
  const [pt, pl, pb, pr] = attrs.pads;
  const ho = windowedSize(h, attrs.kernel[0], attrs.strides[0], pt, pb);
  const wo = windowedSize(w, attrs.kernel[1], attrs.strides[1], pl, pr);
  if (ho < 1 || wo < 1)
    throw new Error(`node '${node.name}' (${node.op}): input ${h}×${w} is too small for a ${attrs.kernel.join('×')} window`);
  return [n, c, ho, wo];
}

/** Max pooling: its tangent and backward rules route through the argmax of each window. */
export const maxPool = defineOp({
  op: 'MaxPool',
  params: {},
  residuals: PRIMAL_INPUT,
  inferShape(inputShapes, attrs, _params, node) {
    expectInputs(node, inputShapes, 1, 4);
    return pooledShape(inputShapes, attrs, node);
  },
  forward: ({ k, inputs, attrs }) => k.maxPool(inputs[0], attrs),
  // Piecewise linear: the tangent flows through each window's (first) maximum.
  jvp: (ctx, [dx]) => (isZero(dx) ? ZERO : ctx.k.maxPoolJvp(ctx.residual('input'), dx, ctx.attrs)),
  backward: (ctx, cotangent, wanted) => ({
    inputs: [wanted.inputs[0] ? ctx.k.maxPoolBackprop(ctx.residual('input'), cotangent, ctx.attrs) : undefined],
    params: {},
  }),
});

/** Average pooling, a linear op. */
export const avgPool = defineLinearOp({
  op: 'AvgPool',
  inferShape(inputShapes, attrs, _params, node) {
    expectInputs(node, inputShapes, 1, 4);
    return pooledShape(inputShapes, attrs, node);
  },
  apply: ({ k, attrs }, [x]) => k.avgPool(x, attrs),
  transpose: ({ k, attrs, inputShapes }, cotangent) => [k.avgPoolBackprop(cotangent, [inputShapes[0][2], inputShapes[0][3]], attrs)],
});

/** Mean over H and W, kept as [N, C, 1, 1] like ONNX GlobalAveragePool. */
export const globalAvgPool = defineLinearOp({
  op: 'GlobalAvgPool',
  inferShape(inputShapes, _attrs, _params, node) {
    expectInputs(node, inputShapes, 1, 4);
    const [n, c] = inputShapes[0];
    return [n, c, 1, 1];
  },
  apply({ k, inputShapes }, [x]) {
    const [, , h, w] = inputShapes[0];
    return k.mul(k.sum(x, [2, 3], true), k.scalar(1 / (h * w)));
  },
  transpose({ k, inputShapes }, cotangent) {
    const [, , h, w] = inputShapes[0];
    const spread = k.constant({ shape: [1, 1, h, w], data: new Float32Array(h * w).fill(1 / (h * w)) });
    return [k.mul(cotangent, spread)];
  },
});
