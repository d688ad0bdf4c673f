import { rulesFor } from '../ops/index.js';
import type { Graph, Node, Shape } from './graph.js';

const cache = new WeakMap<Graph, ReadonlyMap<string, Shape>>();

/**
 * Checks the graph (unique names, inputs defined before use, parameters present) and infers every
 * value's shape, batch as -1. Errors name the node at fault.
 */
export function inferShapes(graph: Graph): ReadonlyMap<string, Shape> {
  const cached = cache.get(graph);
  if (cached) return cached;
  const shapes = new Map<string, Shape>();
  for (const input of graph.inputs) {
    if (shapes.has(input.name)) throw new Error(`graph input '${input.name}' is declared twice`);
    shapes.set(input.name, input.shape);
  }
  for (const node of graph.nodes) {
    if (shapes.has(node.name)) throw new Error(`node name '${node.name}' is used twice`);
    shapes.set(node.name, nodeShape(graph, node, shapes));
  }
  for (const output of graph.outputs) {
    if (!shapes.has(output)) throw new Error(`graph output '${output}' is not produced by any node`);
  }
  cache.set(graph, shapes);
  return shapes;
}

function nodeShape(graph: Graph, node: Node, shapes: ReadonlyMap<string, Shape>): Shape {
  const rules = rulesFor(node.op, node.name);
  const inputShapes = node.inputs.map((name) => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`node '${node.name}' (${node.op}) reads '${name}', which no earlier node or graph input produces`);
    return shape;
  });
  const paramShapes: Record<string, Shape> = {};
  for (const [role, key] of Object.entries(node.params)) {
    if (!(role in rules.params)) {
      throw new Error(
        `node '${node.name}' (${node.op}) has parameter role '${role}'; expected one of ${Object.keys(rules.params).join(', ') || 'none'}`,
      );
    }
    const value = graph.params.get(key);
    if (!value) throw new Error(`node '${node.name}' (${node.op}): parameter '${key}' (${role}) is missing from the network`);
    paramShapes[role] = value.shape;
  }
  for (const [role, descriptor] of Object.entries(rules.params)) {
    if (!descriptor.required) continue;
    if (!(role in paramShapes)) throw new Error(`node '${node.name}' (${node.op}) needs a '${role}' parameter`);
  }
  return rules.inferShape(inputShapes, node.attrs as never, paramShapes, node as never);
}

/** The inferred shape of one value of the graph. */
export function shapeOf(graph: Graph, value: string): Shape {
  const shape = inferShapes(graph).get(value);
  if (!shape) throw new Error(`no value named '${value}' in the network`);
  return shape;
}
