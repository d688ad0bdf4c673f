import type { Kernels } from '../backend/kernels.js';
import type { Graph, Node, Shape } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { isZero, type RuleContext, rulesFor, type Tangent, ZERO } from '../ops/index.js';

/** Parameter key (as in Graph.params) → the handle of its effective value. */
export type ParamHandles<T> = Readonly<Record<string, T>>;

/**
 * The three interpreters over the IR: forward, tangent (JVP) and backward. They only walk the graph
 * and call each op's rules; they know nothing about any particular op or backend.
 */
function contextFor<T>(k: Kernels<T>, graph: Graph, node: Node, values: ReadonlyMap<string, T>, params: ParamHandles<T>): RuleContext<T> {
  const shapes = inferShapes(graph);
  const nodeParams: Record<string, T> = {};
  for (const [role, key] of Object.entries(node.params)) {
    const handle = params[key];
    if (handle === undefined) throw new Error(`node '${node.name}': no value bound for parameter '${key}'`);
    nodeParams[role] = handle;
  }
  return {
    k,
    node,
    attrs: node.attrs,
    inputs: node.inputs.map((name) => {
      const value = values.get(name);
      if (value === undefined) throw new Error(`node '${node.name}': input '${name}' has no value`);
      return value;
    }),
    params: nodeParams,
    inputShapes: node.inputs.map((name) => shapes.get(name) as Shape),
    outputShape: shapes.get(node.name) as Shape,
  };
}

/** Forward pass; returns every value (graph inputs and node outputs) by name. */
export function evaluate<T>(k: Kernels<T>, graph: Graph, inputs: Readonly<Record<string, T>>, params: ParamHandles<T>): Map<string, T> {
  const values = new Map<string, T>();
  for (const input of graph.inputs) {
    const value = inputs[input.name];
    if (value === undefined) throw new Error(`no value given for graph input '${input.name}'`);
    values.set(input.name, value);
  }
  for (const node of graph.nodes) {
    values.set(node.name, rulesFor(node.op, node.name).forward(contextFor(k, graph, node, values, params)));
  }
  return values;
}

/**
 * Tangent pass beside recorded primal values. Graph inputs and parameters without a tangent are
 * symbolic zeros, so the first linearised layer after a cut computes only its parameter term.
 */
export function jvp<T>(
  k: Kernels<T>,
  graph: Graph,
  primals: ReadonlyMap<string, T>,
  params: ParamHandles<T>,
  paramTangents: Readonly<Record<string, Tangent<T>>>,
  inputTangents: Readonly<Record<string, Tangent<T>>> = {},
): Map<string, Tangent<T>> {
  const tangents = new Map<string, Tangent<T>>();
  for (const input of graph.inputs) tangents.set(input.name, inputTangents[input.name] ?? ZERO);
  for (const node of graph.nodes) {
    const ctx = contextFor(k, graph, node, primals, params);
    const nodeTangents: Record<string, Tangent<T>> = {};
    for (const [role, key] of Object.entries(node.params)) nodeTangents[role] = paramTangents[key] ?? ZERO;
    const inTangents = node.inputs.map((name) => tangents.get(name) ?? ZERO);
    const allZero = inTangents.every(isZero) && Object.values(nodeTangents).every(isZero);
    const output = primals.get(node.name) as T;
    tangents.set(node.name, allZero ? ZERO : rulesFor(node.op, node.name).jvp(ctx, output, inTangents, nodeTangents));
  }
  return tangents;
}

/** What `backward` returns: gradients by value and by parameter. */
export interface Gradients<T> {
  /** Parameter key → gradient of its effective value. */
  readonly params: Record<string, T>;
  readonly inputs: Record<string, T>;
}

/**
 * Backward pass: cotangents of some values → gradients of the requested parameters and inputs. The
 * same pass is the VJP of the forward (fine-tuning) and the transpose of the tangent pass (gradient
 * features), because each backward rule transposes the op's linearisation at the primal values.
 */
export function backward<T>(
  k: Kernels<T>,
  graph: Graph,
  primals: ReadonlyMap<string, T>,
  params: ParamHandles<T>,
  outputCotangents: Readonly<Record<string, T>>,
  wrt: { readonly params: readonly string[]; readonly inputs?: readonly string[] },
): Gradients<T> {
  const wantedParams = new Set(wrt.params);
  const needsGrad = new Set(wrt.inputs ?? []);
  for (const node of graph.nodes) {
    if (node.inputs.some((name) => needsGrad.has(name)) || Object.values(node.params).some((key) => wantedParams.has(key))) {
      needsGrad.add(node.name);
    }
  }
  const cotangents = new Map<string, T>(Object.entries(outputCotangents));
  const paramGrads: Record<string, T> = {};
  for (let index = graph.nodes.length - 1; index >= 0; index--) {
    const node = graph.nodes[index];
    const cotangent = cotangents.get(node.name);
    if (cotangent === undefined || !needsGrad.has(node.name)) continue;
    const roles = Object.entries(node.params).filter(([, key]) => wantedParams.has(key));
    const ctx = contextFor(k, graph, node, primals, params);
    const result = rulesFor(node.op, node.name).backward(ctx, primals.get(node.name) as T, cotangent, {
      inputs: node.inputs.map((name) => needsGrad.has(name)),
      params: roles.map(([role]) => role),
    });
    node.inputs.forEach((name, i) => {
      const grad = result.inputs[i];
      if (grad === undefined) return;
      const existing = cotangents.get(name);
      cotangents.set(name, existing === undefined ? grad : k.add(existing, grad));
    });
    for (const [role, key] of roles) {
      const grad = result.params[role];
      paramGrads[key] = paramGrads[key] === undefined ? grad : k.add(paramGrads[key], grad);
    }
  }
  const inputGrads: Record<string, T> = {};
  for (const name of wrt.inputs ?? []) {
    const grad = cotangents.get(name);
    if (grad !== undefined) inputGrads[name] = grad;
  }
  return { params: paramGrads, inputs: inputGrads };
}

/** Every parameter of the graph as a backend constant. */
export function constantParams<T>(k: Kernels<T>, graph: Graph, keys: Iterable<string> = graph.params.keys()): Record<string, T> {
  const handles: Record<string, T> = {};
  for (const key of keys) {
    const value = graph.params.get(key);
    if (!value) throw new Error(`parameter '${key}' is missing from the network`);
    handles[key] = k.constant(value);
  }
  return handles;
}
