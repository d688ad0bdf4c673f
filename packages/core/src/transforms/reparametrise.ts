import type { Graph } from '../ir/graph.js';
import { param } from '../ir/graph.js';
import type { HostTensor } from '../tensor.js';

/**
 * Scales between stored (trainable) and effective parameter values: effective = scale × stored.
 * The forward function is unchanged; what changes is the geometry gradient descent sees, and the
 * coordinates in which the gradient-feature direction w2 lives.
 */
export type ParamScales = ReadonlyMap<string, number>;

/**
 * The NTK parametrisation of θ2 used by the paper: each Conv2D/Dense weight is stored divided by
 * √(1/C_out) and each bias divided by √0.1, so effective = stored × scale reproduces the network.
 */
export function ntkParametrisation(head: Graph): { graph: Graph; scales: ParamScales } {
  const params = new Map(head.params);
  const scales = new Map<string, number>();
  for (const node of head.nodes) {
    if (node.op !== 'Conv2D' && node.op !== 'Dense') continue;
    const weight = param(head, node.params.weight);
    scales.set(node.params.weight, Math.sqrt(1 / weight.shape[0]));
    if (node.params.bias) scales.set(node.params.bias, Math.sqrt(0.1));
  }
  for (const [key, scale] of scales) params.set(key, scaled(param(head, key), 1 / scale));
  return { graph: { ...head, params }, scales };
}

/** Standard coordinates: every scale 1 (stored = effective). */
export function standardParametrisation(head: Graph): { graph: Graph; scales: ParamScales } {
  return { graph: head, scales: new Map() };
}

/** A copy of `tensor` multiplied by `factor`. */
export function scaled(tensor: HostTensor, factor: number): HostTensor {
  return { shape: tensor.shape, data: tensor.data.map((v) => v * factor) };
}

/** Effective values of the given stored parameters. */
export function effectiveParams(graph: Graph, scales: ParamScales): Map<string, HostTensor> {
  const effective = new Map<string, HostTensor>();
  for (const [key, value] of graph.params) {
    const scale = scales.get(key);
    effective.set(key, scale === undefined ? value : scaled(value, scale));
  }
  return effective;
}
