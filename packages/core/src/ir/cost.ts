import type { Graph, Shape } from './graph.js';
import { param } from './graph.js';
import { inferShapes } from './shapes.js';

/** Multiply-adds per sample of the convolutions and dense layers (everything else is negligible). */
export function multiplyAddsPerSample(graph: Graph): number {
  const shapes = inferShapes(graph);
  let total = 0;
  for (const node of graph.nodes) {
    const out = shapes.get(node.name) as Shape;
    if (node.op === 'Conv2D') {
      const [, inPerGroup, kh, kw] = param(graph, node.params.weight).shape;
      total += out[1] * out[2] * out[3] * inPerGroup * kh * kw;
    } else if (node.op === 'Dense') {
      const [outFeatures, inFeatures] = param(graph, node.params.weight).shape;
      total += outFeatures * inFeatures;
    }
  }
  return total;
}
