import type { Graph, Node } from '../ir/graph.js';
import { param } from '../ir/graph.js';
import { rulesFor } from '../ops/rule.js';
import type { HostTensor } from '../tensor.js';

/**
 * Folds every inference BatchNorm into the op that feeds it (and feeds nothing else) when that op
 * absorbs BatchNorm (OpRules.absorbsBatchNorm: Conv2D, Dense), using the running statistics:
 * W' = W·a, b' = (b − mean)·a + β with a = γ/√(var + ε). The merged node keeps the BatchNorm's name,
 * so every consumer and any cut named after it are unchanged.
 */
export function foldBatchNorm(graph: Graph): Graph {
  const consumers = new Map<string, number>();
  for (const node of graph.nodes) for (const input of node.inputs) consumers.set(input, (consumers.get(input) ?? 0) + 1);
  const paramUsers = new Map<string, number>();
  for (const node of graph.nodes) for (const key of Object.values(node.params)) paramUsers.set(key, (paramUsers.get(key) ?? 0) + 1);
  const producers = new Map(graph.nodes.map((node) => [node.name, node]));
  const params = new Map(graph.params);
  const replaced = new Map<string, Node>();
  const removed = new Set<string>();

  for (const node of graph.nodes) {
    if (node.op !== 'BatchNorm') continue;
    const producer = replaced.get(node.inputs[0]) ?? producers.get(node.inputs[0]);
    const foldable =
      producer !== undefined &&
      rulesFor(producer.op, producer.name).absorbsBatchNorm === true &&
      consumers.get(producer.name) === 1 &&
      // A weight shared with another node cannot absorb this BatchNorm's scale.
      Object.values(producer.params).every((key) => paramUsers.get(key) === 1) &&
      !graph.outputs.includes(producer.name);
    if (!foldable) continue;
    const weight = param(graph, producer.params.weight);
    const outChannels = weight.shape[0];
    const scale = param(graph, node.params.scale).data;
    const shift = param(graph, node.params.bias).data;
    const mean = param(graph, node.params.mean).data;
    const variance = param(graph, node.params.variance).data;
    const epsilon = (node.attrs as { epsilon: number }).epsilon;
    const oldBias = producer.params.bias ? param(graph, producer.params.bias).data : new Float32Array(outChannels);

    const perOut = weight.data.length / outChannels;
    const newWeight = new Float32Array(weight.data.length);
    const newBias = new Float32Array(outChannels);
    for (let o = 0; o < outChannels; o++) {
      const a = scale[o] / Math.sqrt(variance[o] + epsilon);
      for (let i = 0; i < perOut; i++) newWeight[o * perOut + i] = weight.data[o * perOut + i] * a;
      newBias[o] = (oldBias[o] - mean[o]) * a + shift[o];
    }
    const weightKey = producer.params.weight;
    const biasKey = producer.params.bias ?? `${weightKey.replace(/\.weight$/, '')}.bias`;
    params.set(weightKey, { shape: weight.shape, data: newWeight } satisfies HostTensor);
    params.set(biasKey, { shape: [outChannels], data: newBias });
    for (const key of Object.values(node.params)) params.delete(key);
    replaced.set(node.name, { ...producer, name: node.name, params: { weight: weightKey, bias: biasKey } });
    removed.add(producer.name);
  }

  const nodes = graph.nodes.filter((n) => !removed.has(n.name)).map((n) => replaced.get(n.name) ?? n);
  return { ...graph, nodes, params };
}
