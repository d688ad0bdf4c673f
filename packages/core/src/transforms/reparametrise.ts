import type { Graph } from '../ir/graph.js';
import { param } from '../ir/graph.js';
import { rulesFor } from '../ops/rule.js';
import type { HostTensor } from '../tensor.js';

/**
 * Scales between stored (trainable) and effective parameter values: effective = scale × stored.
 * The forward function is unchanged; what changes is the geometry gradient descent sees, and the
 * coordinates in which the gradient-feature direction w2 lives.
 */
export type ParamScales = ReadonlyMap<string, number>;

/**
 * The NTK parametrisation of θ2 used by the paper: each weight (as its op describes its parameters)
 * is stored divided by √(1/C_out), C_out its axis 0, and each bias divided by √0.1, so effective =
 * stored × scale reproduces the network.
 */
export function ntkParametrisation(head: Graph): { graph: Graph; scales: ParamScales } {
  const params = new Map(head.params);
  const scales = new Map<string, number>();
  for (const node of head.nodes) {
    const descriptors = rulesFor(node.op, node.name).params;
    for (const [role, key] of Object.entries(node.params)) {
      const kind = descriptors[role]?.kind;
      if (kind === 'weight') scales.set(key, Math.sqrt(1 / param(head, key).shape[0]));
      else if (kind === 'bias') scales.set(key, Math.sqrt(0.1));
    }
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
