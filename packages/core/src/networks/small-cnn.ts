import type { Graph, Node } from '../ir/graph.js';
import { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';
import { reinitialise } from '../transforms/reinitialise.js';

/** The shape of a `smallCnn`. */
export interface SmallCnnOptions {
  /** Input [channels, height, width]. */
  readonly input: readonly [number, number, number];
  /** Output channels and stride of each 3×3 conv (+ReLU) block. */
  readonly channels: readonly number[];
  readonly strides: readonly number[];
  readonly classes: number;
  readonly seed: number;
}

/**
 * A small, randomly initialised CNN: 3×3 conv + ReLU blocks named block1…blockN, global average
 * pooling, and a Dense classifier. gradfeat's demo pre-trains it on a pretext task.
 */
export function smallCnn(options: SmallCnnOptions): Graph {
  const nodes: Node[] = [];
  const params = new Map<string, HostTensor>();
  let previous = 'input';
  let inChannels = options.input[0];
  options.channels.forEach((outChannels, index) => {
    const conv = `conv${index + 1}`;
    params.set(`${conv}.weight`, { shape: [outChannels, inChannels, 3, 3], data: new Float32Array(outChannels * inChannels * 9) });
    params.set(`${conv}.bias`, { shape: [outChannels], data: new Float32Array(outChannels) });
    nodes.push({
      name: conv,
      op: 'Conv2D',
      inputs: [previous],
      attrs: { strides: [options.strides[index], options.strides[index]], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 },
      params: { weight: `${conv}.weight`, bias: `${conv}.bias` },
    });
    nodes.push({ name: `block${index + 1}`, op: 'ReLU', inputs: [conv], attrs: {}, params: {} });
    previous = `block${index + 1}`;
    inChannels = outChannels;
  });
  nodes.push({ name: 'pool', op: 'GlobalAvgPool', inputs: [previous], attrs: {}, params: {} });
  nodes.push({ name: 'features', op: 'Flatten', inputs: ['pool'], attrs: {}, params: {} });
  params.set('classifier.weight', { shape: [options.classes, inChannels], data: new Float32Array(options.classes * inChannels) });
  params.set('classifier.bias', { shape: [options.classes], data: new Float32Array(options.classes) });
  nodes.push({
    name: 'classifier',
    op: 'Dense',
    inputs: ['features'],
    attrs: {},
    params: { weight: 'classifier.weight', bias: 'classifier.bias' },
  });
  const graph: Graph = { inputs: [{ name: 'input', shape: [-1, ...options.input] }], nodes, outputs: ['classifier'], params };
  return reinitialise(graph, new Rng(options.seed));
}
