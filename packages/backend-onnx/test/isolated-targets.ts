/**
 * Entry points the hostile-model tests and the fuzz campaign call in a child process (test-support/
 * isolated.ts), where a runaway allocation or a hang cannot take the test runner down.
 */
import { summariseNetwork } from '@gradfeat/core';
import { importOnnx } from '../src/index.js';

/** What `gradfeat info` does with an .onnx file: import it and list its cut points. */
export function describeModel(path: string) {
  const summary = summariseNetwork(importOnnx(path));
  return { nodes: summary.nodes, cutPoints: summary.cutPoints.length };
}
