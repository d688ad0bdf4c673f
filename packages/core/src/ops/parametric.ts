import type { Kernels } from '../backend/kernels.js';
import type { Shape } from '../ir/graph.js';
import { sizeOf } from '../tensor.js';
import { defineBilinearOp, defineOp, expectInputs, isZero, ZERO } from './rule.js';

/** Output extent of a strided, padded, dilated window along one axis. */
export function windowedSize(size: number, kernel: number, stride: number, padBegin: number, padEnd: number, dilation = 1): number {
  return Math.floor((size + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1;
}

function channelBias<T>(k: Kernels<T>, bias: T): T {
  return k.reshape(bias, [1, -1, 1, 1]);
}

/** Conv2D: bilinear in (input, weight), plus a per-channel bias. */
export const conv2d = defineBilinearOp({
  op: 'Conv2D',
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
  // Per output value, one multiply-add per weight of its group.
  multiplyAdds: (_inputs, output, params) => sizeOf(output.slice(1)) * sizeOf(params.weight.slice(1)),
  apply: ({ k, attrs }, x, weight, bias) => k.conv2d(x, weight, bias, attrs),
  biasTerm: ({ k }, bias) => channelBias(k, bias),
  transposeInput: ({ k, attrs, inputShapes }, cotangent, weight) =>
    k.conv2dBackpropInput(cotangent, weight, [inputShapes[0][2], inputShapes[0][3]], attrs),
  transposeWeight: ({ k, attrs, paramShapes }, x, cotangent) => k.conv2dBackpropFilter(x, cotangent, paramShapes.weight, attrs),
  biasGradient: ({ k }, cotangent) => k.sum(cotangent, [0, 2, 3], false),
});

/** Dense: y = x Wᵀ + b with W [out, in]; bilinear like Conv2D. */
export const dense = defineBilinearOp({
  op: 'Dense',
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
  multiplyAdds: (_inputs, _output, params) => sizeOf(params.weight),
  apply({ k }, x, weight, bias) {
    const y = k.matMul(x, weight, false, true);
    return bias ? k.add(y, bias) : y;
  },
  biasTerm: (_ctx, bias) => bias,
  transposeInput: ({ k }, cotangent, weight) => k.matMul(cotangent, weight, false, false),
  transposeWeight: ({ k }, x, cotangent) => k.matMul(cotangent, x, true, false),
  biasGradient: ({ k }, cotangent) => k.sum(cotangent, [0], false),
});

/**
 * Inference BatchNorm: y = (x − mean)·scale/√(var+ε) + bias, per channel (axis 1). Its statistics are
 * frozen buffers, so it is linear in x; fold it into the preceding conv to train through it.
 */
export const batchNorm = defineOp({
  op: 'BatchNorm',
  params: {
    scale: { kind: 'buffer', required: true, initial: 1 },
    bias: { kind: 'buffer', required: true, initial: 0 },
    mean: { kind: 'buffer', required: true, initial: 0 },
    variance: { kind: 'buffer', required: true, initial: 1 },
  },
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
