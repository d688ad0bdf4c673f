import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cutNetwork, cutPoints, type Graph, type HostTensor, type Node } from '../src/index.js';

/**
 * A random DAG of Dense and Add nodes on [N, 4] values, in topological order, ending in a Dense
 * classifier: each node reads one or two earlier values (graph inputs included), so skips of every
 * length cross candidate cuts; some nodes feed nothing the features need.
 */
const dags = fc
  .record({
    inputs: fc.integer({ min: 1, max: 2 }),
    reads: fc.array(fc.array(fc.nat(), { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 14 }),
    features: fc.nat(),
  })
  .map(({ inputs, reads, features }): Graph => {
    const params = new Map<string, HostTensor>();
    const values = Array.from({ length: inputs }, (_, i) => `x${i}`);
    const nodes: Node[] = reads.map((picks, index): Node => {
      const name = `n${index}`;
      const inputNames = picks.map((pick) => values[pick % values.length]);
      values.push(name);
      if (inputNames.length === 2) return { name, op: 'Add', inputs: inputNames, attrs: {}, params: {} };
      params.set(`${name}.weight`, { shape: [4, 4], data: new Float32Array(16) });
      return { name, op: 'Dense', inputs: inputNames, attrs: {}, params: { weight: `${name}.weight` } };
    });
    params.set('fc.weight', { shape: [3, 4], data: new Float32Array(12) });
    const featureName = values[inputs + (features % reads.length)];
    nodes.push({ name: 'fc', op: 'Dense', inputs: [featureName], attrs: {}, params: { weight: 'fc.weight' } });
    return { inputs: Array.from({ length: inputs }, (_, i) => ({ name: `x${i}`, shape: [-1, 4] })), nodes, outputs: ['fc'], params };
  });

/** The definition: a value is a cut point when cutNetwork accepts it; θ2's size is its head's parameters. */
function cutPointsByDefinition(graph: Graph) {
  const candidates = [...graph.inputs.map((i) => ({ name: i.name, op: 'Input' })), ...graph.nodes.slice(0, -1)];
  return candidates.flatMap(({ name, op }) => {
    try {
      const { head } = cutNetwork(graph, name);
      const headParameters = [...head.params.values()].reduce((total, tensor) => total + tensor.data.length, 0);
      return [{ name, op, headParameters }];
    } catch {
      return [];
    }
  });
}

describe('cutPoints', () => {
  it('lists exactly the cuts cutNetwork accepts, with the size of θ2, on 300 random DAGs (seeded)', () => {
    fc.assert(
      fc.property(dags, (graph) => {
        expect(cutPoints(graph).map(({ name, op, headParameters }) => ({ name, op, headParameters }))).toEqual(
          cutPointsByDefinition(graph),
        );
      }),
      { seed: 2020, numRuns: 300 },
    );
  });
});
