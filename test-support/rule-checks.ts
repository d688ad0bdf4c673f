import { describe, expect, it } from 'vitest';
import {
  BATCH,
  type Backend,
  backward,
  evaluate,
  formatShape,
  type Graph,
  type HostTensor,
  hostTensor,
  inputShapesOf,
  isZero,
  jvp,
  type Kernels,
  type Node,
  type OpAttrs,
  type OpType,
  type PoolAttrs,
  type Program,
  pointFromPrimals,
  relativeError,
  runProgramOnce,
  type Shape,
  type SignedProgram,
  sameShape,
  shapeOf,
  type Tangent,
} from '../packages/core/src/index.js';
import { Rng } from '../packages/core/src/random.js';
import { backendForSuite, convAttrs, uniformTensor } from './kernel-conformance.js';

/**
 * Backend-neutral checks of every op's rules, run as Programs so that they work on eager and graph
 * backends alike, in the backend's own precision:
 *  (a) the JVP (tangents on the inputs and on the trainable parameters) against central finite
 *      differences (f(x + εv) − f(x − εv)) / 2ε of the forward pass;
 *  (b) the backward rule against the JVP by the dot-product test ⟨u, J v⟩ = ⟨Jᵀu, v⟩, separately for
 *      every input and trainable parameter.
 *
 * Every op is piecewise linear or bilinear, so central differences are exact away from kinks and the
 * tolerances only absorb rounding. Kinks are avoided by construction: inputs of ReLU-like ops keep
 * at least KINK_MARGIN from each kink, and max-pool inputs are distinct values KINK_MARGIN apart (no
 * ties), while ε·|v| ≤ ε < KINK_MARGIN / 2, so no perturbation crosses a kink or reorders a window.
 */

export interface RuleCheckTolerances {
  /** Largest relative error max|jvp − fd| / max|fd| accepted. */
  readonly finiteDifference: number;
  /**
   * Largest |⟨u, Jv⟩ − ⟨Jᵀu, v⟩| / (‖u‖·‖Jv‖) accepted; also bounds the zero-tangent comparison.
   * Rounding keeps it near machine epsilon (float32: ~1e-7), while a wrong rule gives about
   * 1/√(output size), 1e-3 or more for these cases: 1e-5 suits float32 backends.
   */
  readonly adjoint: number;
  /** Finite-difference step ε; float32 backends want about 1e-2 to keep rounding small. Default 1e-3. */
  readonly step?: number;
}

export const KINK_MARGIN = 0.05;

/** A tiny network for one op, its random inputs (batch included) and which parameters get tangents. */
export interface RuleCase {
  readonly name: string;
  readonly graph: Graph;
  readonly inputs: Readonly<Record<string, HostTensor>>;
  /** Parameter keys that take tangents and gradients; BatchNorm's frozen statistics take neither. */
  readonly trainable: readonly string[];
}

/** Uniform in [low, high] but at least KINK_MARGIN from every kink. */
function awayFromKinks(rng: Rng, shape: readonly number[], low: number, high: number, kinks: readonly number[]): HostTensor {
  const value = hostTensor(shape);
  for (let i = 0; i < value.data.length; i++) {
    let v: number;
    do v = low + (high - low) * rng.uniform();
    while (kinks.some((kink) => Math.abs(v - kink) < KINK_MARGIN));
    value.data[i] = v;
  }
  return value;
}

/** Distinct values KINK_MARGIN apart in random order: max-pool windows without ties. */
function distinctValues(rng: Rng, shape: readonly number[]): HostTensor {
  const value = hostTensor(shape);
  const order = rng.permutation(value.data.length);
  for (let i = 0; i < order.length; i++) value.data[i] = (order[i] - order.length / 2) * KINK_MARGIN;
  return value;
}

function oneNodeCase<O extends OpType>(
  name: string,
  op: O,
  attrs: OpAttrs[O],
  inputs: Record<string, HostTensor>,
  params: Record<string, HostTensor> = {},
  trainable: readonly string[] = Object.keys(params),
): RuleCase {
  const node: Node<O> = {
    name: 'y',
    op,
    inputs: Object.keys(inputs),
    attrs,
    params: Object.fromEntries(Object.keys(params).map((role) => [role, role])),
  };
  return {
    name,
    graph: {
      inputs: Object.entries(inputs).map(([input, value]) => ({ name: input, shape: [BATCH, ...value.shape.slice(1)] })),
      nodes: [node as Node],
      outputs: ['y'],
      params: new Map(Object.entries(params)),
    },
    inputs,
    trainable,
  };
}

const NO_ATTRS = {} as OpAttrs['ReLU'];

/** Every op of the IR in its awkward configurations, with random sizes from `seed`. */
export function ruleCases(seed = 1729): RuleCase[] {
  const rng = new Rng(seed);
  const size = (low: number, high: number) => low + rng.int(high - low + 1);
  const image = (channels: number) => [size(2, 3), channels, size(5, 8), size(5, 8)];
  const conv = (
    name: string,
    channels: number,
    filter: [number, number, number, number],
    attrs: OpAttrs['Conv2D'],
    withBias: boolean,
  ): RuleCase => {
    const params: Record<string, HostTensor> = { weight: uniformTensor(rng, filter) };
    if (withBias) params.bias = uniformTensor(rng, [filter[0]]);
    return oneNodeCase(name, 'Conv2D', attrs, { x: uniformTensor(rng, image(channels)) }, params);
  };
  const pool = (name: string, op: 'MaxPool' | 'AvgPool', attrs: PoolAttrs): RuleCase => {
    const shape = image(size(1, 3));
    return oneNodeCase(name, op, attrs, { x: op === 'MaxPool' ? distinctValues(rng, shape) : uniformTensor(rng, shape) });
  };
  const features = size(3, 6);
  const dense = (withBias: boolean): Record<string, HostTensor> => {
    const out = size(2, 4);
    return withBias
      ? { weight: uniformTensor(rng, [out, features]), bias: uniformTensor(rng, [out]) }
      : { weight: uniformTensor(rng, [out, features]) };
  };
  const batchNorm = (channels: number): Record<string, HostTensor> => ({
    scale: uniformTensor(rng, [channels], 0.5, 2),
    bias: uniformTensor(rng, [channels]),
    mean: uniformTensor(rng, [channels]),
    variance: uniformTensor(rng, [channels], 0.5, 2),
  });
  const activation = image(size(2, 4));
  const [n, c, h, w] = activation;

  return [
    conv('Conv2D 3×3, stride 1, pads 1, with bias', 3, [4, 3, 3, 3], convAttrs([1, 1], [1, 1, 1, 1]), true),
    conv('Conv2D 3×3, stride 2, asymmetric pads, no bias', 2, [3, 2, 3, 3], convAttrs([2, 2], [0, 1, 1, 2]), false),
    conv('Conv2D 3×2, dilation 2, strides [1, 2], with bias', 2, [3, 2, 3, 2], convAttrs([1, 2], [2, 1, 1, 0], [2, 2], 1), true),
    conv('Conv2D groups 2, with bias', 4, [6, 2, 3, 3], convAttrs([1, 1], [1, 1, 1, 1], [1, 1], 2), true),
    conv('Conv2D depthwise (groups = C), stride 2, with bias', 3, [3, 1, 3, 3], convAttrs([2, 2], [1, 1, 1, 1], [1, 1], 3), true),
    conv('Conv2D depthwise, channel multiplier 2, no bias', 2, [4, 1, 3, 3], convAttrs([1, 1], [0, 1, 2, 1], [1, 1], 2), false),
    conv('Conv2D 1×1, stride 2, no bias', 3, [4, 3, 1, 1], convAttrs([2, 2], [0, 0, 0, 0]), false),
    oneNodeCase('Dense with bias', 'Dense', NO_ATTRS, { x: uniformTensor(rng, [size(2, 4), features]) }, dense(true)),
    oneNodeCase('Dense without bias', 'Dense', NO_ATTRS, { x: uniformTensor(rng, [size(2, 4), features]) }, dense(false)),
    oneNodeCase('BatchNorm on NCHW', 'BatchNorm', { epsilon: 1e-3 }, { x: uniformTensor(rng, activation) }, batchNorm(c), []),
    oneNodeCase(
      'BatchNorm on [N, features]',
      'BatchNorm',
      { epsilon: 1e-5 },
      { x: uniformTensor(rng, [2, features]) },
      batchNorm(features),
      [],
    ),
    oneNodeCase('ReLU', 'ReLU', NO_ATTRS, { x: awayFromKinks(rng, activation, -2, 2, [0]) }),
    oneNodeCase('ReLU6', 'ReLU6', NO_ATTRS, { x: awayFromKinks(rng, activation, -3, 9, [0, 6]) }),
    oneNodeCase('LeakyReLU α = 0.2', 'LeakyReLU', { alpha: 0.2 }, { x: awayFromKinks(rng, activation, -2, 2, [0]) }),
    pool('MaxPool 2×2, stride 2', 'MaxPool', { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] }),
    pool('MaxPool 3×3, stride 2, pads 1', 'MaxPool', { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
    pool('MaxPool 3×2, strides [1, 2], asymmetric pads', 'MaxPool', { kernel: [3, 2], strides: [1, 2], pads: [0, 1, 2, 0] }),
    pool('AvgPool 3×3, stride 2, pads 1, count_include_pad', 'AvgPool', {
      kernel: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      countIncludePad: true,
    }),
    pool('AvgPool 3×3, stride 2, pads 1, padding not counted', 'AvgPool', {
      kernel: [3, 3],
      strides: [2, 2],
      pads: [1, 1, 1, 1],
      countIncludePad: false,
    }),
    pool('AvgPool 2×3, strides [2, 1], asymmetric pads', 'AvgPool', {
      kernel: [2, 3],
      strides: [2, 1],
      pads: [1, 0, 0, 2],
      countIncludePad: false,
    }),
    oneNodeCase('GlobalAvgPool', 'GlobalAvgPool', NO_ATTRS, { x: uniformTensor(rng, activation) }),
    oneNodeCase('Add', 'Add', NO_ATTRS, { a: uniformTensor(rng, activation), b: uniformTensor(rng, activation) }),
    oneNodeCase('Flatten', 'Flatten', NO_ATTRS, { x: uniformTensor(rng, activation) }),
    oneNodeCase('Reshape with -1', 'Reshape', { shape: [h, -1] }, { x: uniformTensor(rng, activation) }),
    oneNodeCase('Pad of channels and asymmetric spatial pads', 'Pad', { pads: [1, 0, 2, 2, 1, 0] }, { x: uniformTensor(rng, activation) }),
    oneNodeCase(
      'Slice of channels with stride-2 spatial subsampling',
      'Slice',
      { begins: [1, 0, 1], ends: [c, Number.MAX_SAFE_INTEGER, h + 5], steps: [1, 2, 2] },
      { x: uniformTensor(rng, activation) },
    ),
    oneNodeCase(
      'Slice with stride 3 and an end inside the axis',
      'Slice',
      { begins: [0, 1, 0], ends: [c, h - 1, w], steps: [2, 1, 3] },
      { x: uniformTensor(rng, activation) },
    ),
    oneNodeCase(
      'Concat of three along channels',
      'Concat',
      { axis: 1 },
      {
        a: uniformTensor(rng, [n, 1, h, w]),
        b: uniformTensor(rng, [n, 2, h, w]),
        c: uniformTensor(rng, [n, 3, h, w]),
      },
    ),
    oneNodeCase('Concat along width', 'Concat', { axis: 3 }, { a: uniformTensor(rng, [n, c, h, 2]), b: uniformTensor(rng, [n, c, h, w]) }),
    oneNodeCase('Identity', 'Identity', NO_ATTRS, { x: uniformTensor(rng, activation) }),
  ];
}

/**
 * A residual block after a cut at its input, like the paper's linearised head: conv → BN → ReLU →
 * conv, plus a channel-padded shortcut, ReLU, max-pool, global pool and a classifier. It has kinks
 * at random places, so it only takes the adjoint and zero-tangent checks, which perturb nothing.
 */
export function residualHeadCase(seed = 31): RuleCase {
  const rng = new Rng(seed);
  const conv = convAttrs([1, 1], [1, 1, 1, 1]);
  const node = <O extends OpType>(name: string, op: O, inputs: string[], attrs: OpAttrs[O], params: Record<string, string> = {}): Node =>
    ({ name, op, inputs, attrs, params }) as Node;
  const params: Record<string, HostTensor> = {
    conv1_weight: uniformTensor(rng, [4, 3, 3, 3]),
    conv1_bias: uniformTensor(rng, [4]),
    bn_scale: uniformTensor(rng, [4], 0.5, 2),
    bn_bias: uniformTensor(rng, [4]),
    bn_mean: uniformTensor(rng, [4]),
    bn_variance: uniformTensor(rng, [4], 0.5, 2),
    conv2_weight: uniformTensor(rng, [4, 4, 3, 3]),
    fc_weight: uniformTensor(rng, [3, 4]),
    fc_bias: uniformTensor(rng, [3]),
  };
  return {
    name: 'residual head after a cut',
    graph: {
      inputs: [{ name: 'cut', shape: [BATCH, 3, 6, 6] }],
      nodes: [
        node('conv1', 'Conv2D', ['cut'], conv, { weight: 'conv1_weight', bias: 'conv1_bias' }),
        node(
          'bn',
          'BatchNorm',
          ['conv1'],
          { epsilon: 1e-3 },
          { scale: 'bn_scale', bias: 'bn_bias', mean: 'bn_mean', variance: 'bn_variance' },
        ),
        node('relu1', 'ReLU', ['bn'], NO_ATTRS),
        node('conv2', 'Conv2D', ['relu1'], conv, { weight: 'conv2_weight' }),
        node('shortcut', 'Pad', ['cut'], { pads: [1, 0, 0, 0, 0, 0] }),
        node('sum', 'Add', ['conv2', 'shortcut'], NO_ATTRS),
        node('relu2', 'ReLU', ['sum'], NO_ATTRS),
        node('pool', 'MaxPool', ['relu2'], { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] }),
        node('gap', 'GlobalAvgPool', ['pool'], NO_ATTRS),
        node('flat', 'Flatten', ['gap'], NO_ATTRS),
        node('fc', 'Dense', ['flat'], NO_ATTRS, { weight: 'fc_weight', bias: 'fc_bias' }),
      ],
      outputs: ['fc'],
      params: new Map(Object.entries(params)),
    },
    inputs: { cut: uniformTensor(rng, [3, 3, 6, 6]) },
    trainable: ['conv1_weight', 'conv1_bias', 'conv2_weight', 'fc_weight', 'fc_bias'],
  };
}

/** Program input names: primal values, tangents and the output cotangent. */
const valueName = (key: string) => `value_${key}`;
const tangentName = (key: string) => `tangent_${key}`;
const COTANGENT = 'cotangent';

/** Graph inputs and trainable parameters: what takes a tangent and gets a gradient. */
function slotsOf(ruleCase: RuleCase): string[] {
  return [...Object.keys(ruleCase.inputs), ...ruleCase.trainable];
}

/** Values of the graph inputs and parameters, and a random tangent for every slot. */
function programInputs(ruleCase: RuleCase, rng: Rng): Record<string, HostTensor> {
  const inputs: Record<string, HostTensor> = {};
  for (const [name, value] of Object.entries(ruleCase.inputs)) inputs[valueName(name)] = value;
  for (const [key, value] of ruleCase.graph.params) inputs[valueName(key)] = value;
  for (const slot of slotsOf(ruleCase)) inputs[tangentName(slot)] = uniformTensor(rng, inputs[valueName(slot)].shape);
  return inputs;
}

/** The program inputs with a batch dimension (graph inputs, their tangents, the cotangent), which graph backends leave free. */
function batchInputs(ruleCase: RuleCase): string[] {
  return [...Object.keys(ruleCase.inputs).flatMap((name) => [valueName(name), tangentName(name)]), COTANGENT];
}

/** A check's program signed for these inputs (batched as batchInputs says) and outputs. */
function signed(ruleCase: RuleCase, program: Program, inputs: Record<string, HostTensor>, outputs: Record<string, Shape>): SignedProgram {
  return { program, inputs: inputShapesOf(inputs, batchInputs(ruleCase)), outputs };
}

/** The shape of a slot's tangent and gradient: a graph input's (batch free) or a parameter's. */
function slotShape(ruleCase: RuleCase, slot: string): Shape {
  return ruleCase.graph.inputs.find((input) => input.name === slot)?.shape ?? (ruleCase.graph.params.get(slot) as HostTensor).shape;
}

function pick<T>(handles: Readonly<Record<string, T>>, keys: Iterable<string>, name: (key: string) => string): Record<string, T> {
  return Object.fromEntries([...keys].map((key) => [key, handles[name(key)]]));
}

/** Forward pass of the case inside a program, keeping the handles it was given. */
function forward<T>(k: Kernels<T>, ruleCase: RuleCase, handles: Readonly<Record<string, T>>) {
  const inputs = pick(handles, Object.keys(ruleCase.inputs), valueName);
  const params = pick(handles, ruleCase.graph.params.keys(), valueName);
  const values = evaluate(k, ruleCase.graph, inputs, params);
  return { inputs, params, values, point: pointFromPrimals(k, ruleCase.graph, values, params) };
}

function nonZero<T>(tangent: Tangent<T> | undefined, what: string): T {
  if (tangent === undefined || isZero(tangent)) throw new Error(`${what} is a symbolic zero although a tangent was given`);
  return tangent;
}

function innerProduct<T>(k: Kernels<T>, a: T, b: T): T {
  return k.sum(
    k.mul(a, b),
    k.shape(a).map((_, axis) => axis),
    false,
  );
}

/** The JVP of the case's output and its central finite differences, both computed on `backend`. */
export async function jvpAndFiniteDifferences(
  backend: Backend,
  ruleCase: RuleCase,
  step: number,
  seed = 5,
): Promise<{ jvp: HostTensor; finiteDifference: HostTensor }> {
  const { graph, trainable } = ruleCase;
  const output = graph.outputs[0];
  const inputNames = Object.keys(ruleCase.inputs);
  const program: Program = <T>(k: Kernels<T>, handles: Readonly<Record<string, T>>) => {
    const { inputs, params, point } = forward(k, ruleCase, handles);
    const inputTangents = pick(handles, inputNames, tangentName);
    const paramTangents = pick(handles, trainable, tangentName);
    const tangent = nonZero(jvp(k, graph, point, params, paramTangents, inputTangents).get(output), `the JVP of '${output}'`);
    const moved = (base: Record<string, T>, tangents: Record<string, T>, scale: T) =>
      Object.fromEntries(
        Object.entries(base).map(([key, value]) => [key, key in tangents ? k.add(value, k.mul(tangents[key], scale)) : value]),
      );
    const at = (sign: number) => {
      const scale = k.scalar(sign * step);
      return evaluate(k, graph, moved(inputs, inputTangents, scale), moved(params, paramTangents, scale)).get(output) as T;
    };
    return { jvp: tangent, finiteDifference: k.mul(k.sub(at(1), at(-1)), k.scalar(1 / (2 * step))) };
  };
  const inputs = programInputs(ruleCase, new Rng(seed));
  const outputShape = shapeOf(graph, output);
  const result = await runProgramOnce(
    backend,
    signed(ruleCase, program, inputs, { jvp: outputShape, finiteDifference: outputShape }),
    inputs,
    `${ruleCase.name}: JVP`,
  );
  return { jvp: result.jvp, finiteDifference: result.finiteDifference };
}

export interface AdjointGap {
  readonly slot: string;
  /** ⟨u, J_slot v_slot⟩ and ⟨(Jᵀu)_slot, v_slot⟩. */
  readonly forward: number;
  readonly transposed: number;
  /** |forward − transposed| / (‖u‖·‖J_slot v_slot‖): rounding stays below the precision's epsilon times a small factor. */
  readonly gap: number;
  /** Shapes of the slot's gradient and of its tangent, which must agree. */
  readonly gradientShape: readonly number[];
  readonly tangentShape: readonly number[];
}

/**
 * The dot-product test for every slot: ⟨u, J v⟩ with only that slot's tangent against ⟨Jᵀu, v⟩ from
 * one backward pass. Testing slots one at a time names the input or parameter whose rule is wrong.
 */
export async function adjointGaps(backend: Backend, ruleCase: RuleCase, seed = 6): Promise<AdjointGap[]> {
  const { graph, trainable } = ruleCase;
  const output = graph.outputs[0];
  const slots = slotsOf(ruleCase);
  const rng = new Rng(seed);
  const inputs = programInputs(ruleCase, rng);
  const batch = Object.values(ruleCase.inputs)[0].shape[0];
  inputs[COTANGENT] = uniformTensor(rng, [batch, ...shapeOf(graph, output).slice(1)]);
  const program: Program = <T>(k: Kernels<T>, handles: Readonly<Record<string, T>>) => {
    const { params, point } = forward(k, ruleCase, handles);
    const u = handles[COTANGENT];
    const gradients = backward(k, graph, point, params, { [output]: u }, { params: trainable, inputs: Object.keys(ruleCase.inputs) });
    const outputs: Record<string, T> = {};
    for (const slot of slots) {
      const isInput = slot in ruleCase.inputs;
      const alongSlot = { [slot]: handles[tangentName(slot)] };
      const jv = nonZero(
        jvp(k, graph, point, params, isInput ? {} : alongSlot, isInput ? alongSlot : {}).get(output),
        `the JVP of '${output}' along '${slot}'`,
      );
      const gradient = isInput ? gradients.inputs[slot] : gradients.params[slot];
      if (gradient === undefined) throw new Error(`backward gave no gradient for '${slot}'`);
      outputs[`forward_${slot}`] = innerProduct(k, u, jv);
      outputs[`transposed_${slot}`] = innerProduct(k, gradient, alongSlot[slot]);
      outputs[`scale_${slot}`] = k.sqrt(k.mul(innerProduct(k, u, u), innerProduct(k, jv, jv)));
      outputs[`gradient_${slot}`] = gradient;
    }
    return outputs;
  };
  const outputs = Object.fromEntries(
    slots.flatMap((slot) => [
      [`forward_${slot}`, []],
      [`transposed_${slot}`, []],
      [`scale_${slot}`, []],
      [`gradient_${slot}`, slotShape(ruleCase, slot)],
    ]),
  );
  const result = await runProgramOnce(backend, signed(ruleCase, program, inputs, outputs), inputs, `${ruleCase.name}: adjoint`);
  return slots.map((slot) => {
    const forwardProduct = result[`forward_${slot}`].data[0];
    const transposed = result[`transposed_${slot}`].data[0];
    return {
      slot,
      forward: forwardProduct,
      transposed,
      gap: Math.abs(forwardProduct - transposed) / result[`scale_${slot}`].data[0],
      gradientShape: result[`gradient_${slot}`].shape,
      tangentShape: inputs[tangentName(slot)].shape,
    };
  });
}

/**
 * The JVP of the output with the graph inputs' tangents left out (symbolic zeros, so the first layer
 * after the cut computes only its parameter term) and with explicit tensors of zeros.
 */
export async function zeroTangentJvps(
  backend: Backend,
  ruleCase: RuleCase,
  seed = 7,
): Promise<{ symbolic: HostTensor; explicit: HostTensor }> {
  const { graph, trainable } = ruleCase;
  const output = graph.outputs[0];
  const inputNames = Object.keys(ruleCase.inputs);
  const inputs = programInputs(ruleCase, new Rng(seed));
  for (const name of inputNames) inputs[tangentName(name)] = hostTensor(ruleCase.inputs[name].shape);
  const program: Program = <T>(k: Kernels<T>, handles: Readonly<Record<string, T>>) => {
    const { params, point } = forward(k, ruleCase, handles);
    const paramTangents = pick(handles, trainable, tangentName);
    const tangentWith = (inputTangents: Record<string, T>) =>
      nonZero(jvp(k, graph, point, params, paramTangents, inputTangents).get(output), `the JVP of '${output}'`);
    return { symbolic: tangentWith({}), explicit: tangentWith(pick(handles, inputNames, tangentName)) };
  };
  const outputShape = shapeOf(graph, output);
  const result = await runProgramOnce(
    backend,
    signed(ruleCase, program, inputs, { symbolic: outputShape, explicit: outputShape }),
    inputs,
    `${ruleCase.name}: zero tangent`,
  );
  return { symbolic: result.symbolic, explicit: result.explicit };
}

function describeTolerances(tolerances: RuleCheckTolerances): string {
  return `finite differences ≤ ${tolerances.finiteDifference}, adjoint ≤ ${tolerances.adjoint}, ε = ${tolerances.step ?? 1e-3}`;
}

export function describeRuleChecks(backendName: string, makeBackend: () => Promise<Backend>, tolerances: RuleCheckTolerances): void {
  const step = tolerances.step ?? 1e-3;
  if (!(step > 0 && step < KINK_MARGIN / 2)) {
    throw new Error(`rule checks: step ε = ${step} must be in (0, ${KINK_MARGIN / 2}) so that perturbations stay clear of kinks`);
  }
  describe(`op rules on ${backendName} (${describeTolerances(tolerances)})`, () => {
    const started = backendForSuite(backendName, makeBackend);

    for (const ruleCase of ruleCases()) {
      describe(ruleCase.name, () => {
        it('JVP matches central finite differences', async () => {
          const { jvp: tangent, finiteDifference } = await jvpAndFiniteDifferences(started(), ruleCase, step);
          expect(formatShape(tangent.shape)).toBe(formatShape(finiteDifference.shape));
          expect(finiteDifference.data.some((v) => v !== 0)).toBe(true);
          expect(relativeError(tangent.data, finiteDifference.data).relative).toBeLessThanOrEqual(tolerances.finiteDifference);
        });
        it('backward is the transpose of the JVP (dot-product test)', async () => {
          expectAdjoint(await adjointGaps(started(), ruleCase), tolerances.adjoint);
        });
      });
    }

    const head = residualHeadCase();
    describe(head.name, () => {
      it('backward is the transpose of the JVP through the whole network', async () => {
        expectAdjoint(await adjointGaps(started(), head), tolerances.adjoint);
      });
      it('a zero tangent at the cut gives the same JVP as an explicit zero tangent', async () => {
        const { symbolic, explicit } = await zeroTangentJvps(started(), head);
        expect(explicit.data.some((v) => v !== 0)).toBe(true);
        expect(sameShape(symbolic.shape, explicit.shape)).toBe(true);
        expect(relativeError(symbolic.data, explicit.data).relative).toBeLessThanOrEqual(tolerances.adjoint);
      });
    });
  });
}

function expectAdjoint(gaps: readonly AdjointGap[], tolerance: number): void {
  for (const gap of gaps) {
    expect(formatShape(gap.gradientShape), `shape of the gradient of '${gap.slot}'`).toBe(formatShape(gap.tangentShape));
    expect(gap.gap, `⟨u, Jv⟩ = ${gap.forward} vs ⟨Jᵀu, v⟩ = ${gap.transposed} for '${gap.slot}'`).toBeLessThanOrEqual(tolerance);
  }
}
