import { INPUT, OUTPUT, type Program } from '../backend/backend.js';
import type { Kernels } from '../backend/kernels.js';
import {
  backward,
  computeResiduals,
  evaluate,
  jvp,
  type LinearisationPoint,
  linearisationResiduals,
  pointFromPrimals,
  pointFromResiduals,
} from '../engine/interpreter.js';
import { multiplyAddsPerSample } from '../ir/cost.js';
import type { Graph, Shape } from '../ir/graph.js';
import { isZero, type Tangent } from '../ops/rule.js';
import type { HostTensor } from '../tensor.js';
import { type LossKind, lossAndGradient } from '../train/losses.js';
import { effectiveParams, type ParamScales } from '../transforms/reparametrise.js';
import type { Classifier, LinearisedModel } from './linearised-model.js';

/**
 * The paper's four models. With f the features of the frozen network, J the Jacobian of f with
 * respect to θ2 and ω̄ the activation baseline's classifier:
 * - activation: w1ᵀ f + b1 (the linear probe; it yields ω̄)
 * - gradient:   ω̄ᵀ J w2
 * - full:       w1ᵀ f + b1 + ω̄ᵀ J w2, with w1 ← ω̄, w2 ← 0 and ω̄ a frozen copy
 * - finetune:   w1ᵀ f_θ2 + b1, training θ2 and the classifier
 */
export type Method = 'activation' | 'gradient' | 'full' | 'finetune';
/** The paper's four methods, in the order they train. */
export const METHODS: readonly Method[] = ['activation', 'gradient', 'full', 'finetune'];

/** Trainable-parameter names: the classifier, the direction w2 per θ2 key, or θ2 itself. */
export const W1 = 'w1.weight';
/** The name of w1's bias among a method's trainables. */
export const B1 = 'w1.bias';
/** The name of the w2 entry for one θ2 parameter. */
export const w2Name = (key: string): string => `w2:${key}`;
/** The name of one θ2 parameter trained by fine-tuning. */
export const theta2Name = (key: string): string => `theta2:${key}`;
/** The output name of a trainable's gradient in a training-step program. */
export const gradName = (name: string): string => `grad:${name}`;

/** The targets input of a training step. */
export const TARGETS = 'targets';
/** The mask input of a multi-label training step (0 where an entry is ignored). */
export const MASK = 'mask';
/** The training step's 1/batch-size input, so one graph serves every batch size. */
export const BATCH_SCALE = 'batchScale';
/** The frozen features f(x) of a sample, an input of the linearised models' steps at a cached point. */
export const FEATURES = 'features';
/** The program input that feeds a residual of the cached point. */
export const residualInput = (name: string): string => `residual:${name}`;

function copy(t: HostTensor): HostTensor {
  return { shape: [...t.shape], data: Float32Array.from(t.data) };
}

/** The linearised models, whose J is evaluated at a fixed θ̄2: per sample, their point is a constant. */
export function isLinearised(method: Method): method is 'gradient' | 'full' {
  return method === 'gradient' || method === 'full';
}

/** What the method's batches feed in: the features f(x) for the linear probe, else the cut value. */
export function methodInputShape(model: LinearisedModel, method: Method): readonly number[] {
  return method === 'activation' ? [model.featureCount] : model.cutShape;
}

/** The head at which J is evaluated: θ̄2, or the ablation's other head (same nodes and keys). */
function termGraph(model: LinearisedModel): Graph {
  return model.gradientTermHead ?? model.head;
}

/**
 * Per-sample shapes of what the linearised models' tangent and backward passes read at their point
 * besides the cut value (which is their input): the residuals of J's head (see OpRules.residuals).
 */
export function pointResiduals(model: LinearisedModel): Map<string, Shape> {
  const residuals = linearisationResiduals(termGraph(model), model.headParamKeys, model.features);
  residuals.delete(`value:${model.cut}`);
  return new Map([...residuals].map(([name, shape]) => [name, shape.slice(1)]));
}

/** The parts of a linearisation-point cache row, in order: the features, then each residual. */
export function pointRowParts(model: LinearisedModel): [string, readonly number[]][] {
  return [[FEATURES, [model.featureCount]], ...pointResiduals(model)];
}

/**
 * Whether caching the linearised models' point saves more than it costs: the frozen head's forward
 * pass (its multiply-adds per sample) against reading the point's values per sample. Measured on 2
 * cores: ResNet blocks (≈ 400 and 3,000 multiply-adds per point value) train 14–24 % faster from a
 * cached point; MobileNet's last block (≈ 90) is faster recomputing than reading 150 KB per sample.
 */
export function pointCachePays(model: LinearisedModel): boolean {
  const values = pointRowParts(model).reduce((total, [, shape]) => total + shape.reduce((a, b) => a * b, 1), 0);
  return multiplyAddsPerSample(termGraph(model)) >= POINT_CACHE_MULTIPLY_ADDS_PER_VALUE * values;
}

/** Multiply-adds per cached value above which the point is cached (see pointCachePays). */
export const POINT_CACHE_MULTIPLY_ADDS_PER_VALUE = 200;

/** The trainable parameters a method starts from. ω̄ is copied, never aliased. */
export function initialParams(model: LinearisedModel, method: Method, omegaBar: Classifier): Map<string, HostTensor> {
  const params = new Map<string, HostTensor>();
  if (method === 'activation') {
    params.set(W1, { shape: omegaBar.weight.shape, data: new Float32Array(omegaBar.weight.data.length) });
    params.set(B1, { shape: omegaBar.bias.shape, data: new Float32Array(omegaBar.bias.data.length) });
    return params;
  }
  if (model.headParamKeys.length === 0) {
    throw new Error(`method '${method}' needs parameters in θ2, but the cut '${model.cut}' is at the features; cut earlier`);
  }
  if (method === 'full' || method === 'finetune') {
    params.set(W1, copy(omegaBar.weight));
    params.set(B1, copy(omegaBar.bias));
  }
  const effective = method === 'finetune' ? effectiveParams(model.head, model.scales) : undefined;
  for (const key of model.headParamKeys) {
    const stored = model.head.params.get(key) as HostTensor;
    if (effective) params.set(theta2Name(key), scaled(effective.get(key) as HostTensor, 1 / (model.finetuneScales.get(key) ?? 1)));
    else params.set(w2Name(key), { shape: stored.shape, data: new Float32Array(stored.data.length) });
  }
  return params;
}

function scaled(t: HostTensor, factor: number): HostTensor {
  return factor === 1 ? copy(t) : { shape: [...t.shape], data: t.data.map((v) => v * factor) };
}

/**
 * × the parametrisation scale of `key`: maps stored values to effective ones, and (chain rule)
 * gradients of effective values to gradients of stored ones.
 */
function applyScale<T>(k: Kernels<T>, scales: ParamScales, key: string, x: T): T {
  const scale = scales.get(key) ?? 1;
  return scale === 1 ? x : k.mul(x, k.scalar(scale));
}

interface Forward<T> {
  readonly logits: T;
  /** Cotangent of the loss w.r.t. logits → gradients of every trainable parameter. */
  gradients(dlogits: T): Record<string, T>;
}

/** How a method's programs are built. */
export interface MethodProgramOptions {
  /**
   * The linearised models read their point (features and residuals, see pointResiduals) from inputs
   * instead of evaluating the frozen head on every step; `linearisationPointProgram` computes them.
   */
  readonly cachedPoint?: boolean;
}

/**
 * Builds a method's logits from program inputs, and the backward pass for its trainables. Frozen
 * values (θ̄2, ω̄) are constants captured once, so eager backends upload them once and graph
 * backends store them as initializers.
 */
function methodForward(model: LinearisedModel, method: Method, omegaBar: Classifier, options: MethodProgramOptions = {}) {
  const frozenHead = effectiveParams(model.head, model.scales);
  const frozenOmega = copy((model.gradientTermClassifier ?? omegaBar).weight);
  const frozenTermHead = model.gradientTermHead && effectiveParams(model.gradientTermHead, model.scales);
  const cached = options.cachedPoint === true && isLinearised(method);
  const residualNames = cached ? [...pointResiduals(model).keys()] : [];

  return <T>(k: Kernels<T>, inputs: Readonly<Record<string, T>>): Forward<T> => {
    const classify = (features: T) => k.add(k.matMul(features, inputs[W1], false, true), inputs[B1]);
    const classifierGradients = (features: T, dlogits: T) => ({
      [W1]: k.matMul(dlogits, features, true, false),
      [B1]: k.sum(dlogits, [0], false),
    });

    if (method === 'activation') {
      const features = inputs[INPUT];
      return { logits: classify(features), gradients: (dlogits) => classifierGradients(features, dlogits) };
    }

    const headParams: Record<string, T> = {};
    const trained = new Set(method === 'finetune' ? model.headParamKeys : []);
    for (const [key, value] of frozenHead) {
      headParams[key] = trained.has(key) ? applyScale(k, model.finetuneScales, key, inputs[theta2Name(key)]) : k.constant(value);
    }

    if (method === 'finetune') {
      const primals = evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, headParams);
      const features = primals.get(model.features) as T;
      const point = pointFromPrimals(k, model.head, primals, headParams);
      return {
        logits: classify(features),
        gradients: (dlogits) => {
          const featureCotangent = k.matMul(dlogits, inputs[W1], false, false);
          const grads = backward(k, model.head, point, headParams, { [model.features]: featureCotangent }, { params: model.headParamKeys });
          const out: Record<string, T> = classifierGradients(features, dlogits);
          for (const key of model.headParamKeys) out[theta2Name(key)] = applyScale(k, model.finetuneScales, key, grads.params[key]);
          return out;
        },
      };
    }

    // The frozen head's forward pass, evaluated only when something reads it, at most once.
    let evaluated: Map<string, T> | undefined;
    const headPrimals = () => {
      evaluated ??= evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, headParams);
      return evaluated;
    };
    // J is evaluated at θ̄2, or at the ablation's other head parameters (the features stay pre-trained).
    const termParams = frozenTermHead ? constants(k, frozenTermHead) : headParams;
    let point: LinearisationPoint<T>;
    if (cached) {
      const given: Record<string, T> = { [`value:${model.cut}`]: inputs[INPUT] };
      for (const name of residualNames) given[name] = inputs[residualInput(name)];
      point = pointFromResiduals(given);
    } else {
      const termPrimals = frozenTermHead ? evaluate(k, termGraph(model), { [model.cut]: inputs[INPUT] }, termParams) : headPrimals();
      point = pointFromPrimals(k, termGraph(model), termPrimals, termParams);
    }
    const omega = k.constant(frozenOmega);
    const gradientTerm = k.matMul(directionTangent(k, model, point, termParams, inputs), omega, false, true);
    // Linear in w2, so its gradient is the head's backward pass of ω̄ᵀ·∂L/∂logits.
    const directionGradients = (dlogits: T) => {
      const featureCotangent = k.matMul(dlogits, omega, false, false);
      const grads = backward(
        k,
        termGraph(model),
        point,
        termParams,
        { [model.features]: featureCotangent },
        {
          params: model.headParamKeys,
        },
      );
      const out: Record<string, T> = {};
      for (const key of model.headParamKeys) out[w2Name(key)] = applyScale(k, model.scales, key, grads.params[key]);
      return out;
    };
    if (method === 'gradient') return { logits: gradientTerm, gradients: directionGradients };
    const features = cached ? inputs[FEATURES] : (headPrimals().get(model.features) as T);
    return {
      logits: k.add(classify(features), gradientTerm),
      gradients: (dlogits) => ({ ...classifierGradients(features, dlogits), ...directionGradients(dlogits) }),
    };
  };
}

function constants<T>(k: Kernels<T>, values: ReadonlyMap<string, HostTensor>): Record<string, T> {
  return Object.fromEntries([...values].map(([key, value]) => [key, k.constant(value)]));
}

/**
 * J w2: the tangent of the features along the direction w2 (program inputs `w2:<key>`, in stored
 * coordinates), from one tangent pass that starts at zero at the cut.
 */
function directionTangent<T>(
  k: Kernels<T>,
  model: LinearisedModel,
  point: LinearisationPoint<T>,
  headParams: Record<string, T>,
  inputs: Readonly<Record<string, T>>,
): T {
  const direction: Record<string, Tangent<T>> = {};
  for (const key of model.headParamKeys) direction[key] = applyScale(k, model.scales, key, inputs[w2Name(key)]);
  const tangent = jvp(k, termGraph(model), point, headParams, direction).get(model.features) as Tangent<T>;
  if (isZero(tangent)) throw new Error(`θ2 does not affect the features '${model.features}'`);
  return tangent;
}

/**
 * cut value (`inputs`) → the linearised models' point: `features` f(x) at θ̄2 and `residual:<name>`
 * for each of pointResiduals(model). What a feature cache stores so that their steps skip the head's
 * forward pass.
 */
export function linearisationPointProgram(model: LinearisedModel): Program {
  const frozenHead = effectiveParams(model.head, model.scales);
  const frozenTermHead = model.gradientTermHead && effectiveParams(model.gradientTermHead, model.scales);
  const names = [...pointResiduals(model).keys()];
  return (k, inputs) => {
    const params = constants(k, frozenHead);
    const primals = evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, params);
    const termParams = frozenTermHead ? constants(k, frozenTermHead) : params;
    const termPrimals = frozenTermHead ? evaluate(k, termGraph(model), { [model.cut]: inputs[INPUT] }, termParams) : primals;
    const residuals = computeResiduals(k, termGraph(model), termPrimals, termParams, names);
    return {
      [FEATURES]: primals.get(model.features) as (typeof inputs)[string],
      ...Object.fromEntries(Object.entries(residuals).map(([name, value]) => [residualInput(name), value])),
    };
  };
}

/** cut value (`inputs`) → `outputs`: the point as one flat row per sample (see pointRowParts). */
export function pointRowsProgram(model: LinearisedModel): Program {
  const point = linearisationPointProgram(model);
  const parts = pointRowParts(model);
  return (k, inputs) => {
    const values = point(k, inputs);
    const flat = parts.map(([name, shape]) =>
      k.reshape(values[name === FEATURES ? FEATURES : residualInput(name)], [-1, shape.reduce((a, b) => a * b, 1)]),
    );
    return { [OUTPUT]: k.concat(flat, 1) };
  };
}

/** inputs (cut value) + `w2:<key>` → { features, tangent: J w2 }. */
export function tangentProgram(model: LinearisedModel): Program {
  const frozenHead = effectiveParams(model.head, model.scales);
  return (k, inputs) => {
    const params = constants(k, frozenHead);
    const primals = evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, params);
    return {
      features: primals.get(model.features) as (typeof inputs)[string],
      tangent: directionTangent(k, model, pointFromPrimals(k, model.head, primals, params), params, inputs),
    };
  };
}

/** inputs (and the point when cached) + trainables → { logits }. */
export function logitsProgram(model: LinearisedModel, method: Method, omegaBar: Classifier, options: MethodProgramOptions = {}): Program {
  const forward = methodForward(model, method, omegaBar, options);
  return (k, inputs) => ({ logits: forward(k, inputs).logits });
}

/** inputs, targets, batchScale (and mask, and the point when cached) + trainables → { loss, logits, grad:<name> for each trainable }. */
export function trainStepProgram(
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  loss: LossKind,
  options: MethodProgramOptions = {},
): Program {
  const forward = methodForward(model, method, omegaBar, options);
  return (k, inputs) => {
    const { logits, gradients } = forward(k, inputs);
    const terms = lossAndGradient(k, loss, logits, inputs[TARGETS], inputs[BATCH_SCALE], inputs[MASK]);
    const outputs: Record<string, typeof logits> = { loss: terms.loss, logits };
    for (const [name, grad] of Object.entries(gradients(terms.dlogits))) outputs[gradName(name)] = grad;
    return outputs;
  };
}

/** cut value (`inputs`) → `outputs`: the features f(x) of the frozen head. */
export function featuresProgram(model: LinearisedModel): Program {
  return forwardProgram({ ...model.head, params: effectiveParams(model.head, model.scales) });
}

/** A single-input, single-output graph's forward pass as a program: `inputs` → `outputs`. */
export function forwardProgram(graph: Graph): Program {
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
    throw new Error(`a forward program needs one input and one output; this graph has ${graph.inputs.length} and ${graph.outputs.length}`);
  }
  return (k, inputs) => {
    const values = evaluate(k, graph, { [graph.inputs[0].name]: inputs[INPUT] }, constants(k, graph.params));
    return { [OUTPUT]: values.get(graph.outputs[0]) as (typeof inputs)[string] };
  };
}

/**
 * The whole trained model as one program, images (`inputs`) → `logits`: the frozen trunk, then the
 * method's head with its trained parameters baked in as constants. What `gradfeat export` writes.
 */
export function deployedProgram(
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  trained: ReadonlyMap<string, HostTensor>,
): Program {
  const trunk = forwardProgram(model.trunk);
  const features = method === 'activation' ? featuresProgram(model) : undefined;
  const head = logitsProgram(model, method, omegaBar);
  return (k, inputs) => {
    const cut = trunk(k, inputs)[OUTPUT];
    const headInput = features ? features(k, { [INPUT]: cut })[OUTPUT] : cut;
    const params = Object.fromEntries([...trained].map(([name, value]) => [name, k.constant(value)]));
    return head(k, { [INPUT]: headInput, ...params });
  };
}
