import type { Kernels } from '../backend/kernels.js';
import type { Conv2DAttrs, Shape } from '../ir/graph.js';
import { addTangents, defineOp, expectInputs, isZero, PRIMAL_INPUT, type Tangent, ZERO } from './rule.js';

/** Output extent of a strided, padded, dilated window along one axis. */
export function windowedSize(size: number, kernel: number, stride: number, padBegin: number, padEnd: number, dilation = 1): number {
  return Math.floor((size + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1;
}

function channelBias<T>(k: Kernels<T>, bias: T): T {
  return k.reshape(bias, [1, -1, 1, 1]);
}

/**
 * Conv2D is bilinear in (input, weight) plus a bias: its tangent is conv(ż; W̄) + conv(z; Ẇ, ḃ), the
 * paper's Eq. 6, and at the cut (ż = 0) only the second term is computed.
 */
export const conv2d = defineOp({
  op: 'Conv2D',
  paramRoles: ['weight', 'bias'],
  requiredParams: ['weight'],
  residuals: PRIMAL_INPUT,
  inferShape(inputShapes, attrs, params, node) {
    expectInputs(node, inputShapes, 1, 4);
    const [n, c, h, w] = inputShapes[0];
    const weight = params.weight;
    if (weight.length !== 4)
      throw new Error(`node '${node.name}' (Conv2D): weight must be [out, in/groups, kh, kw], got [${weight.join(', ')}]`);
    const [out, inPerGroup, kh, kw] = weight;
    const g = attrs.groups;
    if (c % g !== 0 || out % g !== 0 || c / g !== inPerGroup) {
      throw new Error(`node '${node.name}' (Conv2D): ${c} input channels and weight [${weight.join(', ')}] do not fit groups=${g}`);
    }
    if (params.bias && (params.bias.length !== 1 || params.bias[0] !== out)) {
      throw new Error(`node '${node.name}' (Conv2D): bias must be [${out}], got [${params.bias.join(', ')}]`);
    }
    const [pt, pl, pb, pr] = attrs.pads;
    const ho = windowedSize(h, kh, attrs.strides[0], pt, pb, attrs.dilations[0]);
    const wo = windowedSize(w, kw, attrs.strides[1], pl, pr, attrs.dilations[1]);
    if (ho < 1 || wo < 1) throw new Error(`node '${node.name}' (Conv2D): input ${h}×${w} is too small for a ${kh}×${kw} kernel`);
    return [n, out, ho, wo];
  },
  forward: ({ k, inputs, params, attrs }) => k.conv2d(inputs[0], params.weight, params.bias, attrs),
  jvp(ctx, [dx], paramTangents) {
    const { k, params, attrs } = ctx;
    const dW = paramTangents.weight ?? ZERO;
    const db = paramTangents.bias ?? ZERO;
    const terms: Tangent<(typeof params)[string]>[] = [];
    if (!isZero(dx)) terms.push(k.conv2d(dx, params.weight, undefined, attrs));
    if (!isZero(dW)) terms.push(k.conv2d(ctx.residual('input'), dW, isZero(db) ? undefined : db, attrs));
    else if (!isZero(db)) terms.push(channelBias(k, db));
    return addTangents(k, terms);
  },
  backward(ctx, cotangent, wanted) {
    const { k, params, attrs, inputShapes, paramShapes } = ctx;
    const [, , h, w] = inputShapes[0];
    const grads: Record<string, typeof cotangent> = {};
    if (wanted.params.includes('weight'))
      grads.weight = k.conv2dBackpropFilter(ctx.residual('input'), cotangent, paramShapes.weight, attrs);
    if (wanted.params.includes('bias')) grads.bias = k.sum(cotangent, [0, 2, 3], false);
    return {
      inputs: [wanted.inputs[0] ? k.conv2dBackpropInput(cotangent, params.weight, [h, w], attrs as Conv2DAttrs) : undefined],
      params: grads,
    };
  },
});

/** Dense: y = x Wᵀ + b with W [out, in]; bilinear like Conv2D. */
export const dense = defineOp({
  op: 'Dense',
  paramRoles: ['weight', 'bias'],
  requiredParams: ['weight'],
  residuals: PRIMAL_INPUT,
  inferShape(inputShapes, _attrs, params, node) {
    expectInputs(node, inputShapes, 1, 2);
    const [out, features] = params.weight;
    if (params.weight.length !== 2 || features !== inputShapes[0][1]) {
      throw new Error(
        `node '${node.name}' (Dense): weight [${params.weight.join(', ')}] does not fit input [${inputShapes[0].join(', ')}]; expected [out, ${inputShapes[0][1]}]`,
      );
    }
    return [inputShapes[0][0] as number, out] as Shape;
  },
  forward({ k, inputs, params }) {
    const y = k.matMul(inputs[0], params.weight, false, true);
    return params.bias ? k.add(y, params.bias) : y;
  },
  jvp(ctx, [dx], paramTangents) {
    const { k, params } = ctx;
    const dW = paramTangents.weight ?? ZERO;
    const db = paramTangents.bias ?? ZERO;
    return addTangents(k, [
      isZero(dx) ? ZERO : k.matMul(dx, params.weight, false, true),
      isZero(dW) ? ZERO : k.matMul(ctx.residual('input'), dW, false, true),
      db,
    ]);
  },
  backward(ctx, cotangent, wanted) {
    const { k, params } = ctx;
    const grads: Record<string, typeof cotangent> = {};
    if (wanted.params.includes('weight')) grads.weight = k.matMul(cotangent, ctx.residual('input'), true, false);
    if (wanted.params.includes('bias')) grads.bias = k.sum(cotangent, [0], false);
    return { inputs: [wanted.inputs[0] ? k.matMul(cotangent, params.weight, false, false) : undefined], params: grads };
  },
});

/**
 * Inference BatchNorm: y = (x − mean)·scale/√(var+ε) + bias, per channel (axis 1). Its statistics are
 * frozen buffers, so it is linear in x; fold it into the preceding conv to train through it.
 */
export const batchNorm = defineOp({
  op: 'BatchNorm',
  paramRoles: ['scale', 'bias', 'mean', 'variance'],
  requiredParams: ['scale', 'bias', 'mean', 'variance'],
  residuals: {},
  inferShape(inputShapes, _attrs, params, node) {
    expectInputs(node, inputShapes, 1);
    const channels = inputShapes[0][1];
    for (const role of ['scale', 'bias', 'mean', 'variance']) {
      if (params[role].length !== 1 || params[role][0] !== channels) {
        throw new Error(`node '${node.name}' (BatchNorm): ${role} must be [${channels}], got [${params[role].join(', ')}]`);
      }
    }
    return inputShapes[0];
  },
  forward(ctx) {
    const { k, inputs } = ctx;
    const { multiplier, shift } = batchNormAffine(ctx.k, ctx.params, ctx.attrs.epsilon, ctx.inputShapes[0].length);
    return k.add(k.mul(inputs[0], multiplier), shift);
  },
  jvp(ctx, [dx]) {
    if (isZero(dx)) return ZERO;
    return ctx.k.mul(dx, batchNormAffine(ctx.k, ctx.params, ctx.attrs.epsilon, ctx.inputShapes[0].length).multiplier);
  },
  backward(ctx, cotangent, wanted) {
    if (wanted.params.length > 0) {
      throw new Error(
        `node '${ctx.node.name}' (BatchNorm): its parameters cannot be trained; fold BatchNorm into the preceding conv first (foldBatchNorm)`,
      );
    }
    const { multiplier } = batchNormAffine(ctx.k, ctx.params, ctx.attrs.epsilon, ctx.inputShapes[0].length);
    return { inputs: [wanted.inputs[0] ? ctx.k.mul(cotangent, multiplier) : undefined], params: {} };
  },
});

function batchNormAffine<T>(
  k: Kernels<T>,
  params: Readonly<Record<string, T>>,
  epsilon: number,
  rank: number,
): { multiplier: T; shift: T } {
  const perChannel = rank === 4 ? [1, -1, 1, 1] : [1, -1];
  const a = k.div(params.scale, k.sqrt(k.add(params.variance, k.scalar(epsilon))));
  const shift = k.sub(params.bias, k.mul(params.mean, a));
  return { multiplier: k.reshape(a, perChannel), shift: k.reshape(shift, perChannel) };
}
