/**
 * Entry points the hostile-model tests and the fuzz campaign call in a child process (test-support/
 * isolated.ts), where a hang or a runaway read cannot take the test runner down.
 */
import { summariseNetwork } from '@gradfeat/core';
import { importKerasModel } from '../src/keras/index.js';

/** What `gradfeat info` does with a model.json: import it and list its cut points. */
export async function importModel(modelJson: string) {
  const graph = await importKerasModel(modelJson);
  return { nodes: graph.nodes.length, params: graph.params.size, cutPoints: summariseNetwork(graph).cutPoints.length };
}
