import type { Graph } from '../ir/graph.js';
import { param } from '../ir/graph.js';
import { type ParamDescriptor, rulesFor, WEIGHT_AND_BIAS } from '../ops/rule.js';
import type { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';

/**
 * Replaces the parameters of a graph with a fresh random initialisation, for the paper's ablation
 * (random vs pre-trained θ1, θ2 or ω), as each op describes its parameters: He-normal weights (std
 * √(2/fan_in), fan_in = the values per output channel), zero biases, and buffers at their initial
 * value (BatchNorm as the identity: γ=1, β=0, mean 0, variance 1).
 */
export function reinitialise(graph: Graph, rng: Rng): Graph {
  const params = new Map(graph.params);
  for (const node of graph.nodes) {
    const descriptors = rulesFor(node.op, node.name).params;
    for (const [role, key] of Object.entries(node.params)) {
      params.set(key, freshValue(descriptors[role], param(graph, key), rng));
    }
  }
  return { ...graph, params };
}

function freshValue(descriptor: ParamDescriptor, current: HostTensor, rng: Rng): HostTensor {
  const data = new Float32Array(current.data.length);
  if (descriptor.kind === 'weight') {
    const fanIn = current.data.length / current.shape[0];
    const std = Math.sqrt(2 / fanIn);
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
  } else if (descriptor.kind === 'buffer') {
    data.fill(descriptor.initial ?? 0);
  }
  return { shape: current.shape, data };
}

/** A fresh classifier ω [classes, features] with He-normal weights and zero bias. */
export function randomClassifier(classes: number, features: number, rng: Rng): { weight: HostTensor; bias: HostTensor } {
  const weight = freshValue(WEIGHT_AND_BIAS.weight, { shape: [classes, features], data: new Float32Array(classes * features) }, rng);
  return { weight, bias: { shape: [classes], data: new Float32Array(classes) } };
}
