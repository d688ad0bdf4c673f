import type { Kernels } from '../backend/kernels.js';
import type { Node, OpAttrs, OpType, Shape } from '../ir/graph.js';

/** A tangent known to be zero (JAX's symbolic Zero): rules skip its terms instead of computing on zeros. */
export const ZERO = Symbol('zero tangent');
/** A tangent value, or the symbolic zero where none flows (e.g. at the cut). */
export type Tangent<T> = T | typeof ZERO;

/** Whether a tangent is the symbolic zero. */
export function isZero<T>(t: Tangent<T>): t is typeof ZERO {
  return t === ZERO;
}

/** Sum of tangents, skipping symbolic zeros; ZERO when all are. */
export function addTangents<T>(k: Kernels<T>, terms: readonly Tangent<T>[]): Tangent<T> {
  let total: Tangent<T> = ZERO;
  for (const term of terms) {
    if (isZero(term)) continue;
    total = isZero(total) ? term : k.add(total, term);
  }
  return total;
}

/** What every rule of one node sees: the kernels, the node, and its (effective) parameters. */
export interface OpContext<T, O extends OpType = OpType> {
  readonly k: Kernels<T>;
  readonly node: Node<O>;
  readonly attrs: OpAttrs[O];
  /** Parameter role → effective value (after any reparametrisation scale). */
  readonly params: Readonly<Record<string, T>>;
  readonly paramShapes: Readonly<Record<string, Shape>>;
  readonly inputShapes: readonly Shape[];
  readonly outputShape: Shape;
}

/** The forward rule's context: the primal input values too. */
export interface RuleContext<T, O extends OpType = OpType> extends OpContext<T, O> {
  readonly inputs: readonly T[];
}

/**
 * The linear rules' context. They never see the primal values, only the residuals the op declares
 * (JAX's partial evaluation): so a linearised model can take them from a cache instead of running the
 * forward pass again, since at a fixed θ̄2 they are constants per sample.
 */
export interface LinearContext<T, O extends OpType = OpType> extends OpContext<T, O> {
  /** The value of one of the op's declared residuals at the linearisation point. */
  residual(name: string): T;
}

/** A residual: one of the node's primal inputs as it is, or a value of the output's shape computed from the inputs and output. */
export type Residual =
  | {
      /** Which primal input the residual is. */
      readonly input: number;
    }
  | {
      /** Computes the residual from the forward context and the op's output. */
      readonly compute: <T>(ctx: RuleContext<T>, output: T) => T;
    };

/** What a backward rule returns. */
export interface Cotangents<T> {
  /** Per input; undefined where the input needs no gradient. */
  readonly inputs: readonly (T | undefined)[];
  /** Per parameter role that was asked for. */
  readonly params: Readonly<Record<string, T>>;
}

/** Which gradients a backward rule must produce. */
export interface Wanted {
  readonly inputs: readonly boolean[];
  readonly params: readonly string[];
}

/**
 * One op's rules, together: shape inference, forward, the residuals its linear rules read, tangent
 * (JVP) and backward (transpose of the linearisation, which serves both the VJP of fine-tuning and the
 * transpose of the tangent pass).
 */
export interface OpRules<O extends OpType = OpType> {
  readonly op: O;
  /** The op's parameters by role: what each is, for every transform that treats parameters. */
  readonly params: Readonly<Record<string, ParamDescriptor>>;
  /** A BatchNorm right after this op can fold into its weight and bias (per output channel, axis 0). */
  readonly absorbsBatchNorm?: boolean;
  /** Multiply-adds per sample, where the op has a noticeable cost. */
  multiplyAdds?(inputShapes: readonly Shape[], outputShape: Shape, paramShapes: Readonly<Record<string, Shape>>): number;
  /** What the linear rules read of the primals, by name; linear ops need none. */
  readonly residuals: Readonly<Record<string, Residual>>;
  /** The output shape from the inputs' and parameters' shapes. */
  inferShape(inputShapes: readonly Shape[], attrs: OpAttrs[O], paramShapes: Readonly<Record<string, Shape>>, node: Node<O>): Shape;
  /** The output value. */
  forward<T>(ctx: RuleContext<T, O>): T;
  /** The output tangent from the input and parameter tangents, at the point's residuals. */
  jvp<T>(ctx: LinearContext<T, O>, inputTangents: readonly Tangent<T>[], paramTangents: Readonly<Record<string, Tangent<T>>>): Tangent<T>;
  /** The cotangents of the inputs and parameters that are wanted, from the output cotangent. */
  backward<T>(ctx: LinearContext<T, O>, cotangent: T, wanted: Wanted): Cotangents<T>;
}

/**
 * What one parameter of an op is. The transforms ask this instead of knowing ops: NTK scaling (a
 * weight by √(1/C_out), C_out its axis 0; a bias by √0.1), the trainable θ2 (weights and biases),
 * re-initialisation (He-normal weights over the values per output channel, zero biases, a buffer's
 * own initial value) and BatchNorm folding (scales a weight's output channels and shifts its bias).
 */
export interface ParamDescriptor {
  readonly kind: 'weight' | 'bias' | 'buffer';
  readonly required: boolean;
  /** A frozen buffer's value after re-initialisation (e.g. 1 for BatchNorm's scale and variance). */
  readonly initial?: number;
}

/** The trainable weight and optional bias of bilinear ops (Conv2D, Dense). */
export const WEIGHT_AND_BIAS: Readonly<Record<string, ParamDescriptor>> = {
  weight: { kind: 'weight', required: true },
  bias: { kind: 'bias', required: false },
};

/** The residual of bilinear ops and max pooling: the primal input itself. */
export const PRIMAL_INPUT: Readonly<Record<string, Residual>> = { input: { input: 0 } };

const registry = new Map<OpType, OpRules>();

/** Declares an op's rules (a typed identity, so each op's file reads as a definition). */
export function defineOp<O extends OpType>(rules: OpRules<O>): OpRules<O> {
  if (registry.has(rules.op)) throw new Error(`op '${rules.op}' already has rules; an op is defined once`);
  registry.set(rules.op, rules as unknown as OpRules);
  return rules;
}

/** Every op with rules, in definition order: what coverage tests walk. */
export function registeredOps(): OpType[] {
  return [...registry.keys()];
}

/** The rules of an op; an error naming the node when the op is unknown. */
export function rulesFor(op: OpType, nodeName: string): OpRules {
  const rules = registry.get(op);
  if (!rules) throw new Error(`node '${nodeName}': op '${op}' has no rules registered`);
  return rules;
}

/**
 * JAX's `deflinear`: a parameter-free op linear in its inputs. Its JVP is the op applied to the
 * tangents, so only the forward and the transpose are written. An op of several inputs also says how
 * to apply itself when some tangents are symbolic zeros (without materialising them as x × 0, which
 * would turn an infinite primal into NaN).
 */
export function defineLinearOp<O extends OpType>(spec: {
  op: O;
  inferShape: OpRules<O>['inferShape'];
  apply<T>(ctx: OpContext<T, O>, inputs: readonly T[]): T;
  transpose<T>(ctx: OpContext<T, O>, cotangent: T, wanted: Wanted): readonly (T | undefined)[];
  applyToTangents?<T>(ctx: OpContext<T, O>, tangents: readonly Tangent<T>[]): T;
}): OpRules<O> {
  return defineOp({
    op: spec.op,
    params: {},
    residuals: {},
    inferShape: spec.inferShape,
    forward: (ctx) => spec.apply(ctx, ctx.inputs),
    jvp(ctx, inputTangents) {
      const [only] = inputTangents;
      if (inputTangents.every(isZero)) return ZERO;
      if (inputTangents.length === 1 && !isZero(only)) return spec.apply(ctx, [only]);
      if (!spec.applyToTangents) throw new Error(`op '${spec.op}' takes several inputs but says nothing of zero tangents`);
      return spec.applyToTangents(ctx, inputTangents);
    },
    backward: (ctx, cotangent, wanted) => ({ inputs: spec.transpose(ctx, cotangent, wanted), params: {} }),
  });
}

/**
 * JAX's `defbilinear`: y = f(x, W) + b, linear in x and in W separately (Conv2D, Dense). Written are
 * the product f itself and its two transposes; the tangent f(ẋ, W̄) + f(x, Ẇ) + ḃ (the paper's Eq. 6)
 * and the backward pass follow, reading x only as the residual 'input'.
 */
export function defineBilinearOp<O extends OpType>(spec: {
  op: O;
  inferShape: OpRules<O>['inferShape'];
  multiplyAdds: NonNullable<OpRules<O>['multiplyAdds']>;
  /** f(x, W), plus the bias when given. */
  apply<T>(ctx: OpContext<T, O>, x: T, weight: T, bias?: T): T;
  /** A bias alone as a term of the output (broadcast as f(x, W) + b broadcasts it). */
  biasTerm<T>(ctx: OpContext<T, O>, bias: T): T;
  /** ∂L/∂x from ∂L/∂y: f's transpose in x. */
  transposeInput<T>(ctx: OpContext<T, O>, cotangent: T, weight: T): T;
  /** ∂L/∂W from x and ∂L/∂y: f's transpose in W. */
  transposeWeight<T>(ctx: OpContext<T, O>, x: T, cotangent: T): T;
  /** ∂L/∂b from ∂L/∂y: the sum over every axis but the output channels'. */
  biasGradient<T>(ctx: OpContext<T, O>, cotangent: T): T;
}): OpRules<O> {
  return defineOp({
    op: spec.op,
    params: WEIGHT_AND_BIAS,
    absorbsBatchNorm: true,
    residuals: PRIMAL_INPUT,
    multiplyAdds: spec.multiplyAdds,
    inferShape: spec.inferShape,
    forward: (ctx) => spec.apply(ctx, ctx.inputs[0], ctx.params.weight, ctx.params.bias),
    jvp(ctx, [dx], paramTangents) {
      const dW = paramTangents.weight ?? ZERO;
      const db = paramTangents.bias ?? ZERO;
      const terms: Tangent<(typeof ctx.params)[string]>[] = [];
      if (!isZero(dx)) terms.push(spec.apply(ctx, dx, ctx.params.weight));
      if (!isZero(dW)) terms.push(spec.apply(ctx, ctx.residual('input'), dW, isZero(db) ? undefined : db));
      else if (!isZero(db)) terms.push(spec.biasTerm(ctx, db));
      return addTangents(ctx.k, terms);
    },
    backward(ctx, cotangent, wanted) {
      const grads: Record<string, typeof cotangent> = {};
      if (wanted.params.includes('weight')) grads.weight = spec.transposeWeight(ctx, ctx.residual('input'), cotangent);
      if (wanted.params.includes('bias')) grads.bias = spec.biasGradient(ctx, cotangent);
      return { inputs: [wanted.inputs[0] ? spec.transposeInput(ctx, cotangent, ctx.params.weight) : undefined], params: grads };
    },
  });
}

/**
 * JAX's `defjvp` for elementwise nonlinearities: tangent and cotangent are both multiplied by the
 * derivative at the primal value (the paper's Eq. 7), the op's one residual. The derivative may be
 * written from the input or, where that is cheaper, from the output (ReLU's from its output's sign).
 */
export function defineElementwiseOp<O extends OpType>(spec: {
  op: O;
  apply<T>(k: Kernels<T>, x: T, attrs: OpAttrs[O]): T;
  derivative<T>(k: Kernels<T>, at: { readonly input: T; readonly output: T }, attrs: OpAttrs[O]): T;
}): OpRules<O> {
  return defineOp({
    op: spec.op,
    params: {},
    residuals: {
      derivative: { compute: (ctx, output) => spec.derivative(ctx.k, { input: ctx.inputs[0], output }, ctx.attrs as OpAttrs[O]) },
    },
    inferShape: (shapes) => shapes[0],
    forward: (ctx) => spec.apply(ctx.k, ctx.inputs[0], ctx.attrs),
    jvp(ctx, [dx]) {
      return isZero(dx) ? ZERO : ctx.k.mul(dx, ctx.residual('derivative'));
    },
    backward(ctx, cotangent, wanted) {
      return { inputs: [wanted.inputs[0] ? ctx.k.mul(cotangent, ctx.residual('derivative')) : undefined], params: {} };
    },
  });
}

/** Checks the number (and rank) of a node's inputs, naming the node when they are wrong. */
export function expectInputs(node: Node, shapes: readonly Shape[], count: number, rank?: number): void {
  if (shapes.length !== count) {
    throw new Error(`node '${node.name}' (${node.op}) takes ${count} input(s), got ${shapes.length}`);
  }
  if (rank !== undefined) {
    shapes.forEach((s, i) => {
      if (s.length !== rank)
        throw new Error(`node '${node.name}' (${node.op}): input ${i} must have rank ${rank}, got shape [${s.join(', ')}]`);
    });
  }
}
