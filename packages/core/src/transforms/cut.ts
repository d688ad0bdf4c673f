import type { Graph, Node, Shape } from '../ir/graph.js';
import { param } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import type { HostTensor } from '../tensor.js';

/** A network split for gradient features: trunk θ1 → head θ2 → linear classifier ω. */
export interface CutNetwork {
  /** θ1: graph inputs → the cut value. Frozen; its output can be cached. */
  readonly trunk: Graph;
  /** θ2: the cut value (its only input) → the features f(x) (its only output). */
  readonly head: Graph;
  readonly cut: string;
  readonly features: string;
  /** ω: the network's final Dense, weight [classes, features] and bias [classes]. */
  readonly classifier: { readonly node: string; readonly weight: HostTensor; readonly bias: HostTensor };
}

/** A value the network can be cut at, and the size of θ2 it gives. */
export interface CutPoint {
  readonly name: string;
  readonly op: string;
  readonly shape: Shape;
  /** Number of parameters in θ2 when cutting here. */
  readonly headParameters: number;
}

/** The network's final Dense, which gradient features take as the classifier ω. */
export function finalClassifier(graph: Graph): Node<'Dense'> {
  const last = graph.nodes[graph.nodes.length - 1];
  if (graph.outputs.length !== 1 || !last || last.name !== graph.outputs[0] || last.op !== 'Dense') {
    throw new Error(
      `gradient features need a network that ends in a Dense classifier producing its only output; this one ends in ${last ? `'${last.name}' (${last.op})` : 'no node'}`,
    );
  }
  return last as Node<'Dense'>;
}

/** Nodes that `target` depends on (inclusive), in graph order. */
function ancestors(graph: Graph, target: string, stopAt?: string): Set<string> {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const seen = new Set<string>();
  const stack = [target];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    const node = byName.get(name);
    if (node && name !== stopAt) stack.push(...node.inputs);
  }
  return seen;
}

function subgraph(graph: Graph, nodes: readonly Node[], inputs: Graph['inputs'], output: string): Graph {
  const params = new Map<string, HostTensor>();
  for (const node of nodes) for (const key of Object.values(node.params)) params.set(key, param(graph, key));
  return { inputs, nodes, outputs: [output], params, metadata: graph.metadata };
}

/** The head's nodes for a cut, or the reason the cut is invalid. */
function headNodes(graph: Graph, cut: string, features: string): Node[] | string {
  const needed = ancestors(graph, features, cut);
  if (!needed.has(cut)) return `the features '${features}' do not depend on '${cut}'`;
  const position = graph.nodes.findIndex((n) => n.name === cut);
  const head = graph.nodes.filter((n, index) => index > position && needed.has(n.name));
  const inside = new Set([cut, ...head.map((n) => n.name)]);
  for (const node of head) {
    const outside = node.inputs.find((input) => !inside.has(input));
    if (outside !== undefined)
      return `node '${node.name}' after the cut also reads '${outside}' from before it (a skip connection crosses the cut)`;
  }
  return head;
}

/** Splits a network at the value `cut` (a node name or a graph input). */
export function cutNetwork(graph: Graph, cut: string): CutNetwork {
  const shapes = inferShapes(graph);
  const classifier = finalClassifier(graph);
  const features = classifier.inputs[0];
  if (!shapes.has(cut) || cut === classifier.name) {
    throw new Error(`cannot cut at '${cut}': it is not a node before the classifier (see \`gradfeat info\` for the valid cut points)`);
  }
  const head = headNodes(graph, cut, features);
  if (typeof head === 'string') throw new Error(`cannot cut at '${cut}': ${head}`);
  const weight = param(graph, classifier.params.weight);
  const bias = classifier.params.bias
    ? param(graph, classifier.params.bias)
    : { shape: [weight.shape[0]], data: new Float32Array(weight.shape[0]) };
  const trunkNeeded = ancestors(graph, cut);
  const trunkNodes = graph.nodes.filter((n) => trunkNeeded.has(n.name));
  const trunkInputs = graph.inputs.filter((input) => trunkNeeded.has(input.name));
  return {
    trunk: subgraph(graph, trunkNodes, trunkInputs, cut),
    head: subgraph(graph, head, [{ name: cut, shape: shapes.get(cut) as Shape }], features),
    cut,
    features,
    classifier: { node: classifier.name, weight, bias },
  };
}

/**
 * Every value the network can be cut at, from the input to the features, with the size of θ2; in
 * time linear in the size of the graph. With nodes in topological order, the head of a cut after
 * node p is every node after p that the features depend on, so the cut is valid unless such a node
 * reads a value from before p (other than the cut itself): each read of that kind rules out the cuts
 * it spans, marked in one pass, and θ2's size is a suffix sum.
 */
export function cutPoints(graph: Graph): CutPoint[] {
  const shapes = inferShapes(graph);
  const classifier = finalClassifier(graph);
  const relevant = ancestors(graph, classifier.inputs[0]);
  const position = new Map(graph.nodes.map((node, index) => [node.name, index]));
  const count = graph.nodes.length;
  // crossed[p] > 0 after the prefix sum: a head node reads past a cut after node p.
  const crossed = new Int32Array(count + 1);
  const cross = (from: number, to: number) => {
    if (from > to) return;
    crossed[from] += 1;
    crossed[to + 1] -= 1;
  };
  const inputsRead = new Set<string>();
  const headParameters = new Float64Array(count + 1);
  for (let index = count - 1; index >= 0; index--) {
    const node = graph.nodes[index];
    headParameters[index] = headParameters[index + 1];
    if (!relevant.has(node.name)) continue;
    for (const key of Object.values(node.params)) headParameters[index] += param(graph, key).data.length;
    for (const input of node.inputs) {
      const from = position.get(input);
      if (from === undefined) inputsRead.add(input);
      cross(from === undefined ? 0 : from + 1, index - 1);
    }
  }
  const points: CutPoint[] = [];
  // Cutting at a graph input leaves every node the features need in θ2, so no other input may be read.
  for (const input of graph.inputs) {
    if (relevant.has(input.name) && [...inputsRead].every((name) => name === input.name)) {
      points.push({ name: input.name, op: 'Input', shape: shapes.get(input.name) as Shape, headParameters: headParameters[0] });
    }
  }
  let open = 0;
  for (const [index, node] of graph.nodes.entries()) {
    open += crossed[index];
    if (node === classifier || !relevant.has(node.name) || open > 0) continue;
    points.push({ name: node.name, op: node.op, shape: shapes.get(node.name) as Shape, headParameters: headParameters[index + 1] });
  }
  return points;
}
