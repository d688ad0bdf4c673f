import type { Graph, Node } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { hostTensor } from '../tensor.js';

/**
 * Ends a network that outputs features [batch, F] — e.g. a pre-trained trunk shipped without its
 * source task's classifier — in a Dense classifier of zeros for `classes` classes, so that it can be
 * cut and linearised. The methods never read this ω's values: the linear probe starts from zeros and
 * gives the ω̄ the other methods use.
 */
export function attachClassifier(graph: Graph, classes: number, name = 'classifier'): Graph {
  if (!(Number.isInteger(classes) && classes >= 1)) throw new Error(`a classifier needs a whole number of classes ≥ 1, got ${classes}`);
  if (graph.outputs.length !== 1) throw new Error(`the network has ${graph.outputs.length} outputs; a classifier goes after exactly one`);
  const features = graph.outputs[0];
  const shape = inferShapes(graph).get(features) ?? [];
  if (shape.length !== 2) {
    throw new Error(`a classifier reads features [batch, F], but the network's output '${features}' is [${shape.join(', ')}]`);
  }
  const taken = new Set([...graph.nodes.map((n) => n.name), ...graph.inputs.map((i) => i.name), ...graph.params.keys()]);
  if ([name, `${name}.weight`, `${name}.bias`].some((n) => taken.has(n))) throw new Error(`the network already uses the name '${name}'`);
  const dense: Node<'Dense'> = {
    name,
    op: 'Dense',
    inputs: [features],
    attrs: {},
    params: { weight: `${name}.weight`, bias: `${name}.bias` },
  };
  const params = new Map(graph.params);
  params.set(dense.params.weight, hostTensor([classes, shape[1]]));
  params.set(dense.params.bias, hostTensor([classes]));
  return { ...graph, nodes: [...graph.nodes, dense], outputs: [name], params };
}
