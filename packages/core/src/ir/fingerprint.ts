import { createHash } from 'node:crypto';
import type { Graph } from './graph.js';

/**
 * A SHA-256 of a graph's structure and parameter values: identifies e.g. the trunk a feature cache
 * was computed with, whatever file or format the network came from.
 */
export function graphFingerprint(graph: Graph): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ inputs: graph.inputs, nodes: graph.nodes, outputs: graph.outputs }));
  for (const key of [...graph.params.keys()].sort()) {
    const value = graph.params.get(key);
    if (!value) continue;
    hash.update(`${key}[${value.shape.join(',')}]`);
    hash.update(new Uint8Array(value.data.buffer, value.data.byteOffset, value.data.byteLength));
  }
  return hash.digest('hex');
}
