import type { Kernels } from '../backend/kernels.js';
import type { Graph, Node, Shape } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { isZero, type LinearContext, type OpContext, type RuleContext, rulesFor, type Tangent, ZERO } from '../ops/index.js';

/** Parameter key (as in Graph.params) → the handle of its effective value. */
export type ParamHandles<T> = Readonly<Record<string, T>>;

/**
 * The interpreters over the IR: forward, tangent (JVP) and backward. They only walk the graph and
 * call each op's rules; they know nothing about any particular op or backend. The linear passes read
 * the primals only through a LinearisationPoint: the residuals each op declares.
 */
function opContext<T>(k: Kernels<T>, graph: Graph, node: Node, params: ParamHandles<T>): OpContext<T> {
  const shapes = inferShapes(graph);
  const nodeParams: Record<string, T> = {};
  const paramShapes: Record<string, Shape> = {};
  for (const [role, key] of Object.entries(node.params)) {
    const handle = params[key];
    if (handle === undefined) throw new Error(`node '${node.name}': no value bound for parameter '${key}'`);
    nodeParams[role] = handle;
    paramShapes[role] = graph.params.get(key)?.shape ?? [];
  }
  return {
    k,
    node,
    attrs: node.attrs,
    params: nodeParams,
    paramShapes,
    inputShapes: node.inputs.map((name) => shapes.get(name) as Shape),
    outputShape: shapes.get(node.name) as Shape,
  };
}

function ruleContext<T>(k: Kernels<T>, graph: Graph, node: Node, values: ReadonlyMap<string, T>, params: ParamHandles<T>): RuleContext<T> {
  return {
    ...opContext(k, graph, node, params),
    inputs: node.inputs.map((name) => {
      const value = values.get(name);
      if (value === undefined) throw new Error(`node '${node.name}': input '${name}' has no value`);
      return value;
    }),
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
    values.set(node.name, rulesFor(node.op, node.name).forward(ruleContext(k, graph, node, values, params)));
  }
  return values;
}

/**
 * Where the linear passes read what each op's rules need of the primals (its declared residuals).
 * A residual that is a primal input is named after that value, `value:<name>`, so that ops reading
 * the same value share it; a computed one is named `<node>:<residual>`.
 */
export interface LinearisationPoint<T> {
  /** The value of `node`'s residual `name` (declared in its op's rules) at this point. */
  residual(node: Node, name: string): T;
}

/** The name a node's residual is stored and fed under (see LinearisationPoint). */
export function residualName(node: Node, name: string): string {
  const residual = rulesFor(node.op, node.name).residuals[name];
  if (!residual) throw new Error(`node '${node.name}' (${node.op}) declares no residual '${name}'`);
  return 'input' in residual ? `value:${node.inputs[residual.input]}` : `${node.name}:${name}`;
}

/** The point of a forward pass: residuals computed from its values when first read. */
export function pointFromPrimals<T>(
  k: Kernels<T>,
  graph: Graph,
  primals: ReadonlyMap<string, T>,
  params: ParamHandles<T>,
): LinearisationPoint<T> {
  const computed = new Map<string, T>();
  return {
    residual(node, name) {
      const key = residualName(node, name);
      const residual = rulesFor(node.op, node.name).residuals[name];
      if ('input' in residual) return primals.get(node.inputs[residual.input]) as T;
      let value = computed.get(key);
      if (value === undefined) {
        value = residual.compute(ruleContext(k, graph, node, primals, params), primals.get(node.name) as T);
        computed.set(key, value);
      }
      return value;
    },
  };
}

/** A point whose residuals were computed elsewhere (e.g. cached per sample): handles by residual name. */
export function pointFromResiduals<T>(residuals: Readonly<Record<string, T>>): LinearisationPoint<T> {
  return {
    residual(node, name) {
      const key = residualName(node, name);
      const value = residuals[key];
      if (value === undefined) throw new Error(`node '${node.name}' needs the residual '${key}', which was not given`);
      return value;
    },
  };
}

function linearContext<T>(
  k: Kernels<T>,
  graph: Graph,
  node: Node,
  params: ParamHandles<T>,
  point: LinearisationPoint<T>,
): LinearContext<T> {
  return { ...opContext(k, graph, node, params), residual: (name) => point.residual(node, name) };
}

/**
 * Tangent pass at a linearisation point. Graph inputs and parameters without a tangent are symbolic
 * zeros, so the first linearised layer after a cut computes only its parameter term.
 */
export function jvp<T>(
  k: Kernels<T>,
  graph: Graph,
  point: LinearisationPoint<T>,
  params: ParamHandles<T>,
  paramTangents: Readonly<Record<string, Tangent<T>>>,
  inputTangents: Readonly<Record<string, Tangent<T>>> = {},
): Map<string, Tangent<T>> {
  const tangents = new Map<string, Tangent<T>>();
  for (const input of graph.inputs) tangents.set(input.name, inputTangents[input.name] ?? ZERO);
  for (const node of graph.nodes) {
    const nodeTangents: Record<string, Tangent<T>> = {};
    for (const [role, key] of Object.entries(node.params)) nodeTangents[role] = paramTangents[key] ?? ZERO;
    const inTangents = node.inputs.map((name) => tangents.get(name) ?? ZERO);
    const allZero = inTangents.every(isZero) && Object.values(nodeTangents).every(isZero);
    tangents.set(
      node.name,
      allZero ? ZERO : rulesFor(node.op, node.name).jvp(linearContext(k, graph, node, params, point), inTangents, nodeTangents),
    );
  }
  return tangents;
}

/** What `backward` returns: gradients by value and by parameter. */
export interface Gradients<T> {
  /** Parameter key → gradient of its effective value. */
  readonly params: Record<string, T>;
  readonly inputs: Record<string, T>;
}

/** The nodes whose output depends on one of `from` (parameter keys or value names). */
function dependents(graph: Graph, params: readonly string[], values: readonly string[] = []): Set<string> {
  const reached = new Set(values);
  const wanted = new Set(params);
  for (const node of graph.nodes) {
    if (node.inputs.some((name) => reached.has(name)) || Object.values(node.params).some((key) => wanted.has(key))) reached.add(node.name);
  }
  return reached;
}

/**
 * Backward pass at a linearisation point: cotangents of some values → gradients of the requested
 * parameters and inputs. The same pass is the VJP of the forward (fine-tuning) and the transpose of
 * the tangent pass (gradient features), because each backward rule transposes the op's linearisation.
 */
export function backward<T>(
  k: Kernels<T>,
  graph: Graph,
  point: LinearisationPoint<T>,
  params: ParamHandles<T>,
  outputCotangents: Readonly<Record<string, T>>,
  wrt: { readonly params: readonly string[]; readonly inputs?: readonly string[] },
): Gradients<T> {
  const wantedParams = new Set(wrt.params);
  const needsGrad = dependents(graph, wrt.params, wrt.inputs);
  const cotangents = new Map<string, T>(Object.entries(outputCotangents));
  const paramGrads: Record<string, T> = {};
  for (let index = graph.nodes.length - 1; index >= 0; index--) {
    const node = graph.nodes[index];
    const cotangent = cotangents.get(node.name);
    if (cotangent === undefined || !needsGrad.has(node.name)) continue;
    const roles = Object.entries(node.params).filter(([, key]) => wantedParams.has(key));
    const result = rulesFor(node.op, node.name).backward(linearContext(k, graph, node, params, point), cotangent, {
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

/**
 * The residuals the linear passes read when `params` vary and `output` is differentiated: those of
 * the nodes between a parameter and the output. Names (see residualName) with their shapes; a primal
 * input of the graph (the cut) is among them when a node reads it, though a caller already has it.
 */
export function linearisationResiduals(graph: Graph, params: readonly string[], output: string): Map<string, Shape> {
  const shapes = inferShapes(graph);
  const reachedFromParams = dependents(graph, params);
  const upstream = new Set([output]);
  for (let index = graph.nodes.length - 1; index >= 0; index--) {
    const node = graph.nodes[index];
    if (upstream.has(node.name)) for (const input of node.inputs) upstream.add(input);
  }
  const residuals = new Map<string, Shape>();
  for (const node of graph.nodes) {
    if (!reachedFromParams.has(node.name) || !upstream.has(node.name)) continue;
    for (const [name, residual] of Object.entries(rulesFor(node.op, node.name).residuals)) {
      const shape = 'input' in residual ? shapes.get(node.inputs[residual.input]) : shapes.get(node.name);
      residuals.set(residualName(node, name), shape as Shape);
    }
  }
  return residuals;
}

/** Every residual of a set, computed from a forward pass's values. */
export function computeResiduals<T>(
  k: Kernels<T>,
  graph: Graph,
  primals: ReadonlyMap<string, T>,
  params: ParamHandles<T>,
  names: Iterable<string>,
): Record<string, T> {
  const byName = new Map<string, { node: Node; residual: string }>();
  for (const node of graph.nodes) {
    for (const residual of Object.keys(rulesFor(node.op, node.name).residuals))
      byName.set(residualName(node, residual), { node, residual });
  }
  const point = pointFromPrimals(k, graph, primals, params);
  const result: Record<string, T> = {};
  for (const name of names) {
    const owner = byName.get(name);
    if (!owner) throw new Error(`no node of the network declares the residual '${name}'`);
    result[name] = point.residual(owner.node, owner.residual);
  }
  return result;
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
