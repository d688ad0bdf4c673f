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

/** What every rule of one node sees: the kernels, the node, primal inputs and (effective) parameters. */
export interface RuleContext<T, O extends OpType = OpType> {
  readonly k: Kernels<T>;
  readonly node: Node<O>;
  readonly attrs: OpAttrs[O];
  readonly inputs: readonly T[];
  /** Parameter role → effective value (after any reparametrisation scale). */
  readonly params: Readonly<Record<string, T>>;
  readonly inputShapes: readonly Shape[];
  readonly outputShape: Shape;
}

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
 * One op's rules, together: shape inference, forward, tangent (JVP) and backward (transpose of the
 * linearisation, which serves both the VJP of fine-tuning and the transpose of the tangent pass).
 */
export interface OpRules<O extends OpType = OpType> {
  readonly op: O;
  /** Parameter roles the op accepts, required ones first. */
  readonly paramRoles: readonly string[];
  readonly requiredParams: readonly string[];
  /** The output shape from the inputs' and parameters' shapes. */
  inferShape(inputShapes: readonly Shape[], attrs: OpAttrs[O], paramShapes: Readonly<Record<string, Shape>>, node: Node<O>): Shape;
  /** The output value. */
  forward<T>(ctx: RuleContext<T, O>): T;
  /** The output tangent from the input and parameter tangents. */
  jvp<T>(
    ctx: RuleContext<T, O>,
    output: T,
    inputTangents: readonly Tangent<T>[],
    paramTangents: Readonly<Record<string, Tangent<T>>>,
  ): Tangent<T>;
  /** The cotangents of the inputs and parameters that are wanted, from the output cotangent. */
  backward<T>(ctx: RuleContext<T, O>, output: T, cotangent: T, wanted: Wanted): Cotangents<T>;
}

const registry = new Map<OpType, OpRules>();

/** Declares an op's rules (a typed identity, so each op's file reads as a definition). */
export function defineOp<O extends OpType>(rules: OpRules<O>): OpRules<O> {
  registry.set(rules.op, rules as unknown as OpRules);
  return rules;
}

/** The rules of an op; an error naming the node when the op is unknown. */
export function rulesFor(op: OpType, nodeName: string): OpRules {
  const rules = registry.get(op);
  if (!rules) throw new Error(`node '${nodeName}': op '${op}' has no rules registered`);
  return rules;
}

/**
 * JAX's `deflinear`: a parameter-free op linear in its inputs. Its JVP is the op applied to the
 * tangents, so only the forward and the transpose are written.
 */
export function defineLinearOp<O extends OpType>(spec: {
  op: O;
  inferShape: OpRules<O>['inferShape'];
  apply<T>(ctx: RuleContext<T, O>, inputs: readonly T[]): T;
  transpose<T>(ctx: RuleContext<T, O>, cotangent: T, wanted: Wanted): readonly (T | undefined)[];
}): OpRules<O> {
  return defineOp({
    op: spec.op,
    paramRoles: [],
    requiredParams: [],
    inferShape: spec.inferShape,
    forward: (ctx) => spec.apply(ctx, ctx.inputs),
    jvp(ctx, _output, inputTangents) {
      if (inputTangents.every(isZero)) return ZERO;
      const k = ctx.k;
      const tangents = inputTangents.map((t, i) => (isZero(t) ? k.mul(ctx.inputs[i], k.scalar(0)) : t));
      return spec.apply(ctx, tangents);
    },
    backward: (ctx, _output, cotangent, wanted) => ({ inputs: spec.transpose(ctx, cotangent, wanted), params: {} }),
  });
}

/**
 * JAX's `defjvp` for elementwise nonlinearities: tangent and cotangent are both multiplied by the
 * derivative at the primal value (the paper's Eq. 7).
 */
export function defineElementwiseOp<O extends OpType>(spec: {
  op: O;
  apply<T>(k: Kernels<T>, x: T, attrs: OpAttrs[O]): T;
  derivative<T>(k: Kernels<T>, x: T, attrs: OpAttrs[O]): T;
}): OpRules<O> {
  return defineOp({
    op: spec.op,
    paramRoles: [],
    requiredParams: [],
    inferShape: (shapes) => shapes[0],
    forward: (ctx) => spec.apply(ctx.k, ctx.inputs[0], ctx.attrs),
    jvp(ctx, _output, [dx]) {
      return isZero(dx) ? ZERO : ctx.k.mul(dx, spec.derivative(ctx.k, ctx.inputs[0], ctx.attrs));
    },
    backward(ctx, _output, cotangent, wanted) {
      return {
        inputs: [wanted.inputs[0] ? ctx.k.mul(cotangent, spec.derivative(ctx.k, ctx.inputs[0], ctx.attrs)) : undefined],
        params: {},
      };
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
