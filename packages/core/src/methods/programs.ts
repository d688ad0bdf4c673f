import type { Program } from '../backend/backend.js';
import type { Kernels } from '../backend/kernels.js';
import { backward, evaluate, jvp } from '../engine/interpreter.js';
import type { Graph } from '../ir/graph.js';
import { isZero, type Tangent } from '../ops/rule.js';
import type { HostTensor } from '../tensor.js';
import { type LossKind, lossAndGradient } from '../train/losses.js';
import { effectiveParams } from '../transforms/reparametrise.js';
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

/** Program inputs besides the trainable parameters. */
export const INPUT = 'inputs';
/** The output key of single-output programs. */
export const OUTPUT = 'outputs';
/** The targets input of a training step. */
export const TARGETS = 'targets';
/** The mask input of a multi-label training step (0 where an entry is ignored). */
export const MASK = 'mask';
/** The training step's 1/batch-size input, so one graph serves every batch size. */
export const BATCH_SCALE = 'batchScale';

function copy(t: HostTensor): HostTensor {
  return { shape: [...t.shape], data: Float32Array.from(t.data) };
}

/** What the method's batches feed in: the features f(x) for the linear probe, else the cut value. */
export function methodInputShape(model: LinearisedModel, method: Method): readonly number[] {
  return method === 'activation' ? [model.featureCount] : model.cutShape;
}

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
  for (const key of model.headParamKeys) {
    const stored = model.head.params.get(key) as HostTensor;
    if (method === 'finetune') params.set(theta2Name(key), copy(stored));
    else params.set(w2Name(key), { shape: stored.shape, data: new Float32Array(stored.data.length) });
  }
  return params;
}

/**
 * × the parametrisation scale of `key`: maps stored values to effective ones, and (chain rule)
 * gradients of effective values to gradients of stored ones.
 */
function applyScale<T>(k: Kernels<T>, model: LinearisedModel, key: string, x: T): T {
  const scale = model.scales.get(key) ?? 1;
  return scale === 1 ? x : k.mul(x, k.scalar(scale));
}

interface Forward<T> {
  readonly logits: T;
  /** Cotangent of the loss w.r.t. logits → gradients of every trainable parameter. */
  gradients(dlogits: T): Record<string, T>;
}

/**
 * Builds a method's logits from program inputs, and the backward pass for its trainables. Frozen
 * values (θ̄2, ω̄) are constants captured once, so eager backends upload them once and graph
 * backends store them as initializers.
 */
function methodForward(model: LinearisedModel, method: Method, omegaBar: Classifier) {
  const frozenHead = effectiveParams(model.head, model.scales);
  const frozenOmega = copy((model.gradientTermClassifier ?? omegaBar).weight);
  const frozenTermHead = model.gradientTermHead && effectiveParams(model.gradientTermHead, model.scales);

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
      headParams[key] = trained.has(key) ? applyScale(k, model, key, inputs[theta2Name(key)]) : k.constant(value);
    }
    const primals = evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, headParams);
    const features = primals.get(model.features) as T;
    const headGradients = (featureCotangent: T, name: (key: string) => string, at = { primals, params: headParams }) => {
      const grads = backward(k, model.head, at.primals, at.params, { [model.features]: featureCotangent }, { params: model.headParamKeys });
      const out: Record<string, T> = {};
      for (const key of model.headParamKeys) out[name(key)] = applyScale(k, model, key, grads.params[key]);
      return out;
    };

    if (method === 'finetune') {
      return {
        logits: classify(features),
        gradients: (dlogits) => ({
          ...classifierGradients(features, dlogits),
          ...headGradients(k.matMul(dlogits, inputs[W1], false, false), theta2Name),
        }),
      };
    }

    const omega = k.constant(frozenOmega);
    // J is evaluated at θ̄2, or at the ablation's other head parameters (the features stay pre-trained).
    const term = frozenTermHead ? termPoint(k, model, frozenTermHead, inputs[INPUT]) : { primals, params: headParams };
    const gradientTerm = k.matMul(directionTangent(k, model, term.primals, term.params, inputs), omega, false, true);
    // Linear in w2, so its gradient is the head's backward pass of ω̄ᵀ·∂L/∂logits.
    const directionGradients = (dlogits: T) => headGradients(k.matMul(dlogits, omega, false, false), w2Name, term);
    if (method === 'gradient') return { logits: gradientTerm, gradients: directionGradients };
    return {
      logits: k.add(classify(features), gradientTerm),
      gradients: (dlogits) => ({ ...classifierGradients(features, dlogits), ...directionGradients(dlogits) }),
    };
  };
}

/**
 * J w2: the tangent of the features along the direction w2 (program inputs `w2:<key>`, in stored
 * coordinates), from one tangent pass that starts at zero at the cut.
 */
function directionTangent<T>(
  k: Kernels<T>,
  model: LinearisedModel,
  primals: ReadonlyMap<string, T>,
  headParams: Record<string, T>,
  inputs: Readonly<Record<string, T>>,
): T {
  const direction: Record<string, Tangent<T>> = {};
  for (const key of model.headParamKeys) direction[key] = applyScale(k, model, key, inputs[w2Name(key)]);
  const tangent = jvp(k, model.head, primals, headParams, direction).get(model.features) as Tangent<T>;
  if (isZero(tangent)) throw new Error(`θ2 does not affect the features '${model.features}'`);
  return tangent;
}

/** The head's primal values and parameter handles at the given (frozen, effective) parameters. */
function termPoint<T>(k: Kernels<T>, model: LinearisedModel, effective: ReadonlyMap<string, HostTensor>, cut: T) {
  const params: Record<string, T> = {};
  for (const [key, value] of effective) params[key] = k.constant(value);
  return { primals: evaluate(k, model.head, { [model.cut]: cut }, params), params };
}

/** inputs (cut value) + `w2:<key>` → { features, tangent: J w2 }. */
export function tangentProgram(model: LinearisedModel): Program {
  const frozenHead = effectiveParams(model.head, model.scales);
  return (k, inputs) => {
    const headParams: Record<string, (typeof inputs)[string]> = {};
    for (const [key, value] of frozenHead) headParams[key] = k.constant(value);
    const primals = evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, headParams);
    return {
      features: primals.get(model.features) as (typeof inputs)[string],
      tangent: directionTangent(k, model, primals, headParams, inputs),
    };
  };
}

/** inputs + trainables → { logits }. */
export function logitsProgram(model: LinearisedModel, method: Method, omegaBar: Classifier): Program {
  const forward = methodForward(model, method, omegaBar);
  return (k, inputs) => ({ logits: forward(k, inputs).logits });
}

/** inputs, targets, batchScale (and mask) + trainables → { loss, logits, grad:<name> for each trainable }. */
export function trainStepProgram(model: LinearisedModel, method: Method, omegaBar: Classifier, loss: LossKind): Program {
  const forward = methodForward(model, method, omegaBar);
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
    const params: Record<string, (typeof inputs)[string]> = {};
    for (const [key, value] of graph.params) params[key] = k.constant(value);
    const values = evaluate(k, graph, { [graph.inputs[0].name]: inputs[INPUT] }, params);
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
