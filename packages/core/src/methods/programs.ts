import { INPUT, OUTPUT, type Program, type SignedProgram } from '../backend/backend.js';
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
import { BATCH, type Graph, type Shape } from '../ir/graph.js';
import { shapeOf } from '../ir/shapes.js';
import { isZero, type Tangent } from '../ops/rule.js';
import { type HostTensor, hostTensor } from '../tensor.js';
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
/** The output of logits programs and training steps: the method's logits [N, classes]. */
export const LOGITS = 'logits';
/** A training step's output: the loss over the batch (its mean with batchScale = 1/N), shape [1]. */
export const LOSS = 'loss';
/** tangentProgram's output J w2, beside the features f(x) (FEATURES). */
export const TANGENT = 'tangent';

/** The targets input of a training step. */
export const TARGETS = 'targets';
/** The mask input of a multi-label training step (0 where an entry is ignored). */
export const MASK = 'mask';
/** The training step's 1/batch-size input, so one graph serves every batch size. */
export const BATCH_SCALE = 'batchScale';
/**
 * The frozen features f(x) of a sample: an output of linearisationPointProgram and tangentProgram,
 * and an input of the linearised models' steps at a cached point.
 */
export const FEATURES = 'features';
/** The program input that feeds a residual of the cached point. */
export const residualInput = (name: string): string => `residual:${name}`;

/**
 * What a training step reads per sample, by role; `stepBatchInputs` names them as the step program's
 * inputs, so that no caller assembles the names.
 */
export interface StepSamples<T> {
  /** The cut values (the features f(x) for the linear probe). */
  readonly samples: T;
  readonly targets: T;
  /** sigmoid-bce: 0 where a target is ignored. */
  readonly mask?: T;
  /** The linearised models' cached point: f(x) and each residual (pointResiduals). */
  readonly point?: { readonly features: T; readonly residuals: Readonly<Record<string, T>> };
}

/** The per-sample inputs of `method`'s step program by name (f(x) of the point is read by 'full' alone). */
export function stepBatchInputs<T>(method: Method, inputs: StepSamples<T>): Record<string, T> {
  const named: Record<string, T> = { [INPUT]: inputs.samples, [TARGETS]: inputs.targets };
  if (inputs.mask !== undefined) named[MASK] = inputs.mask;
  if (inputs.point && method === 'full') named[FEATURES] = inputs.point.features;
  for (const [name, value] of Object.entries(inputs.point?.residuals ?? {})) named[residualInput(name)] = value;
  return named;
}

/** The step program's inputs that stay the same over a batch's rows: the 1/batch-size scale and the trainables. */
export function stepFixedInputs<T>(batchScale: T, trainables: Iterable<readonly [string, T]>): Record<string, T> {
  return { [BATCH_SCALE]: batchScale, ...Object.fromEntries(trainables) };
}

/** Buffers a training step writes its loss and gradients into (RunOptions.into), the same every run. */
export interface StepOutputs {
  /** `loss` and each trainable's gradient, under the step program's output names. */
  readonly into: Record<string, HostTensor>;
  readonly loss: HostTensor;
  /** Each trainable's gradient buffer, by trainable name. */
  readonly gradients: Map<string, Float32Array>;
}

/** Fresh output buffers for a step training `trainables`. */
export function stepOutputBuffers(trainables: ReadonlyMap<string, HostTensor>): StepOutputs {
  const loss = hostTensor([1]);
  const into: Record<string, HostTensor> = { [LOSS]: loss };
  const gradients = new Map<string, Float32Array>();
  for (const [name, value] of trainables) {
    const gradient = hostTensor(value.shape);
    into[gradName(name)] = gradient;
    gradients.set(name, gradient.data);
  }
  return { into, loss, gradients };
}

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

/** One trainable of a method: w1 or b1 (with the part of ω̄ it starts from), or the w2 or θ2 of one θ2 key. */
interface Trainable {
  readonly name: string;
  readonly shape: Shape;
  readonly omega?: HostTensor;
  readonly key?: string;
}

/** A method's trainables, in order. */
function trainables(model: LinearisedModel, method: Method, omegaBar: Classifier): Trainable[] {
  const classifier = [
    { name: W1, shape: omegaBar.weight.shape, omega: omegaBar.weight },
    { name: B1, shape: omegaBar.bias.shape, omega: omegaBar.bias },
  ];
  if (method === 'activation') return classifier;
  if (model.headParamKeys.length === 0) {
    throw new Error(`method '${method}' needs parameters in θ2, but the cut '${model.cut}' is at the features; cut earlier`);
  }
  const theta2 = model.headParamKeys.map((key) => ({
    name: method === 'finetune' ? theta2Name(key) : w2Name(key),
    shape: (model.head.params.get(key) as HostTensor).shape,
    key,
  }));
  return method === 'gradient' ? theta2 : [...classifier, ...theta2];
}

/** The shapes of the trainable parameters of a method, by name (as initialParams gives them). */
export function trainableShapes(model: LinearisedModel, method: Method, omegaBar: Classifier): Map<string, Shape> {
  return new Map(trainables(model, method, omegaBar).map(({ name, shape }) => [name, shape]));
}

/** The trainable parameters a method starts from. ω̄ is copied, never aliased. */
export function initialParams(model: LinearisedModel, method: Method, omegaBar: Classifier): Map<string, HostTensor> {
  const effective = method === 'finetune' ? effectiveParams(model.head, model.scales) : undefined;
  const params = new Map<string, HostTensor>();
  for (const { name, shape, omega, key } of trainables(model, method, omegaBar)) {
    // The probe and w2 start at zero; full and fine-tuning start from ω̄, fine-tuning from θ̄2.
    if (omega && method !== 'activation') params.set(name, copy(omega));
    else if (key !== undefined && effective)
      params.set(name, scaled(effective.get(key) as HostTensor, 1 / (model.finetuneScales.get(key) ?? 1)));
    else params.set(name, hostTensor(shape));
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
   * instead of evaluating the frozen head on every step; `linearisationPointProgram` computes them
   * (the residuals in the storage order).
   */
  readonly cachedPoint?: boolean;
}

/** How a training step is built. */
export interface StepProgramOptions extends MethodProgramOptions {
  /** The step reads a MASK input, 0 where a target is ignored (sigmoid-bce); default false. */
  readonly masked?: boolean;
}

/** A batched input or output: the batch axis, then one sample's shape. */
function batched(sampleShape: readonly number[]): Shape {
  return [BATCH, ...sampleShape];
}

/** What a method's logits read: its samples, the cached point's parts when it reads them, its trainables. */
function methodInputs(model: LinearisedModel, method: Method, omegaBar: Classifier, options: MethodProgramOptions): Record<string, Shape> {
  const inputs: Record<string, Shape> = { [INPUT]: batched(methodInputShape(model, method)) };
  if (options.cachedPoint === true && isLinearised(method)) {
    if (method === 'full') inputs[FEATURES] = batched([model.featureCount]);
    for (const [name, shape] of pointResiduals(model)) inputs[residualInput(name)] = batched(shape);
  }
  for (const [name, shape] of trainableShapes(model, method, omegaBar)) inputs[name] = shape;
  return inputs;
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
      for (const name of residualNames) given[name] = k.fromStorageOrder(inputs[residualInput(name)]);
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
 * for each of pointResiduals(model), in the storage order (see storage-order.ts), which the steps
 * with `cachedPoint` read. What a feature cache stores so that their steps skip the head's forward pass.
 */
export function linearisationPointProgram(model: LinearisedModel): SignedProgram {
  const frozenHead = effectiveParams(model.head, model.scales);
  const frozenTermHead = model.gradientTermHead && effectiveParams(model.gradientTermHead, model.scales);
  const residuals = pointResiduals(model);
  const names = [...residuals.keys()];
  const outputs: Record<string, Shape> = { [FEATURES]: batched([model.featureCount]) };
  for (const [name, shape] of residuals) outputs[residualInput(name)] = batched(shape);
  const program: Program = (k, inputs) => {
    const params = constants(k, frozenHead);
    const primals = evaluate(k, model.head, { [model.cut]: inputs[INPUT] }, params);
    const termParams = frozenTermHead ? constants(k, frozenTermHead) : params;
    const termPrimals = frozenTermHead ? evaluate(k, termGraph(model), { [model.cut]: inputs[INPUT] }, termParams) : primals;
    const values = computeResiduals(k, termGraph(model), termPrimals, termParams, names);
    return {
      [FEATURES]: primals.get(model.features) as (typeof inputs)[string],
      ...Object.fromEntries(Object.entries(values).map(([name, value]) => [residualInput(name), k.toStorageOrder(value)])),
    };
  };
  return { program, inputs: { [INPUT]: batched(model.cutShape) }, outputs };
}

/** The outputs of linearisationPointProgram by role: f(x) and each residual by name (pointResiduals). */
export function pointOfOutputs<T>(
  model: LinearisedModel,
  outputs: Readonly<Record<string, T>>,
): { readonly features: T; readonly residuals: Record<string, T> } {
  const residuals = Object.fromEntries([...pointResiduals(model).keys()].map((name) => [name, outputs[residualInput(name)]]));
  return { features: outputs[FEATURES], residuals };
}

/** cut value (`inputs`) → `outputs`: the point as one flat row per sample (see pointRowParts). */
export function pointRowsProgram(model: LinearisedModel): SignedProgram {
  const point = linearisationPointProgram(model);
  const parts = pointRowParts(model);
  const sizes = parts.map(([, shape]) => shape.reduce((a, b) => a * b, 1));
  return {
    program: (k, inputs) => {
      const values = point.program(k, inputs);
      const flat = parts.map(([name], i) => k.reshape(values[name === FEATURES ? FEATURES : residualInput(name)], [-1, sizes[i]]));
      return { [OUTPUT]: k.concat(flat, 1) };
    },
    inputs: point.inputs,
    outputs: { [OUTPUT]: batched([sizes.reduce((a, b) => a + b, 0)]) },
  };
}

/** inputs (cut value) + `w2:<key>` → FEATURES f(x) and TANGENT J w2. */
export function tangentProgram(model: LinearisedModel): SignedProgram {
  const frozenHead = effectiveParams(model.head, model.scales);
  const inputs: Record<string, Shape> = { [INPUT]: batched(model.cutShape) };
  for (const key of model.headParamKeys) inputs[w2Name(key)] = (model.head.params.get(key) as HostTensor).shape;
  const features = batched([model.featureCount]);
  return {
    program: (k, given) => {
      const params = constants(k, frozenHead);
      const primals = evaluate(k, model.head, { [model.cut]: given[INPUT] }, params);
      return {
        [FEATURES]: primals.get(model.features) as (typeof given)[string],
        [TANGENT]: directionTangent(k, model, pointFromPrimals(k, model.head, primals, params), params, given),
      };
    },
    inputs,
    outputs: { [FEATURES]: features, [TANGENT]: features },
  };
}

/** inputs (and the point when cached) + trainables → LOGITS. */
export function logitsProgram(
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  options: MethodProgramOptions = {},
): SignedProgram {
  const forward = methodForward(model, method, omegaBar, options);
  return {
    program: (k, inputs) => ({ [LOGITS]: forward(k, inputs).logits }),
    inputs: methodInputs(model, method, omegaBar, options),
    outputs: { [LOGITS]: batched([omegaBar.weight.shape[0]]) },
  };
}

/**
 * inputs, targets, batchScale (and mask, and the point when cached) + trainables → LOSS, LOGITS and
 * gradName(name) for each trainable.
 */
export function trainStepProgram(
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  loss: LossKind,
  options: StepProgramOptions = {},
): SignedProgram {
  const forward = methodForward(model, method, omegaBar, options);
  const logits = batched([omegaBar.weight.shape[0]]);
  const inputs: Record<string, Shape> = { ...methodInputs(model, method, omegaBar, options), [TARGETS]: logits, [BATCH_SCALE]: [1] };
  if (options.masked === true) inputs[MASK] = logits;
  const outputs: Record<string, Shape> = { [LOSS]: [1], [LOGITS]: logits };
  for (const [name, shape] of trainableShapes(model, method, omegaBar)) outputs[gradName(name)] = shape;
  return {
    program: (k, given) => {
      const forwarded = forward(k, given);
      const terms = lossAndGradient(k, loss, forwarded.logits, given[TARGETS], given[BATCH_SCALE], given[MASK]);
      const results: Record<string, typeof forwarded.logits> = { [LOSS]: terms.loss, [LOGITS]: forwarded.logits };
      for (const [name, grad] of Object.entries(forwarded.gradients(terms.dlogits))) results[gradName(name)] = grad;
      return results;
    },
    inputs,
    outputs,
  };
}

/** cut value (`inputs`) → `outputs`: the features f(x) of the frozen head. */
export function featuresProgram(model: LinearisedModel): SignedProgram {
  return forwardProgram({ ...model.head, params: effectiveParams(model.head, model.scales) });
}

/**
 * A single-input, single-output graph's forward pass as a program: `inputs` → `outputs`, of the
 * shapes the graph declares and infers (the batch free).
 */
export function forwardProgram(graph: Graph): SignedProgram {
  if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
    throw new Error(`a forward program needs one input and one output; this graph has ${graph.inputs.length} and ${graph.outputs.length}`);
  }
  return {
    program: (k, inputs) => {
      const values = evaluate(k, graph, { [graph.inputs[0].name]: inputs[INPUT] }, constants(k, graph.params));
      return { [OUTPUT]: values.get(graph.outputs[0]) as (typeof inputs)[string] };
    },
    inputs: { [INPUT]: graph.inputs[0].shape },
    outputs: { [OUTPUT]: shapeOf(graph, graph.outputs[0]) },
  };
}

/**
 * The whole trained model as one program, images (`inputs`) → LOGITS: the frozen trunk, then the
 * method's head with its trained parameters baked in as constants. What `gradfeat export` writes.
 */
export function deployedProgram(
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  trained: ReadonlyMap<string, HostTensor>,
): SignedProgram {
  const trunk = forwardProgram(model.trunk);
  const features = method === 'activation' ? featuresProgram(model) : undefined;
  const head = logitsProgram(model, method, omegaBar);
  return {
    program: (k, inputs) => {
      const cut = trunk.program(k, inputs)[OUTPUT];
      const headInput = features ? features.program(k, { [INPUT]: cut })[OUTPUT] : cut;
      const params = Object.fromEntries([...trained].map(([name, value]) => [name, k.constant(value)]));
      return head.program(k, { [INPUT]: headInput, ...params });
    },
    inputs: trunk.inputs,
    outputs: head.outputs,
  };
}
