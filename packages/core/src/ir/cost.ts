import { rulesFor } from '../ops/rule.js';
import type { Graph, Shape } from './graph.js';
import { param } from './graph.js';
import { inferShapes } from './shapes.js';

/** Multiply-adds per sample: the sum over nodes whose op counts its cost (convolutions, dense layers). */
export function multiplyAddsPerSample(graph: Graph): number {
  const shapes = inferShapes(graph);
  let total = 0;
  for (const node of graph.nodes) {
    const count = rulesFor(node.op, node.name).multiplyAdds;
    if (!count) continue;
    const paramShapes = Object.fromEntries(Object.entries(node.params).map(([role, key]) => [role, param(graph, key).shape]));
    total += count(
      node.inputs.map((name) => shapes.get(name) as Shape),
      shapes.get(node.name) as Shape,
      paramShapes,
    );
  }
  return total;
}
