import type { Graph, Node, Pads4 } from '../ir/graph.js';
import { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';
import { reinitialise } from '../transforms/reinitialise.js';

/**
 * Builds randomly initialised networks with BatchNorm already folded (every conv has a bias), for
 * benchmarks and tests. Values are named after the nodes that produce them.
 */
export class NetworkBuilder {
  readonly nodes: Node[] = [];
  readonly params = new Map<string, HostTensor>();

  /** A Conv2D node `name` with its weight and bias parameters; returns its output's name. */
  conv(
    name: string,
    input: string,
    geometry: { inChannels: number; outChannels: number; kernel: number; stride: number; pads: Pads4; groups?: number },
  ): string {
    const { inChannels, outChannels, kernel, stride } = geometry;
    const groups = geometry.groups ?? 1;
    const weightShape = [outChannels, inChannels / groups, kernel, kernel];
    this.params.set(`${name}.weight`, { shape: weightShape, data: new Float32Array(weightShape.reduce((a, b) => a * b, 1)) });
    this.params.set(`${name}.bias`, { shape: [outChannels], data: new Float32Array(outChannels) });
    this.nodes.push({
      name,
      op: 'Conv2D',
      inputs: [input],
      attrs: { strides: [stride, stride], pads: geometry.pads, dilations: [1, 1], groups },
      params: { weight: `${name}.weight`, bias: `${name}.bias` },
    });
    return name;
  }

  /** A parameter-free node; returns its output's name. */
  simple(name: string, op: 'ReLU' | 'ReLU6' | 'Add' | 'GlobalAvgPool' | 'Flatten', inputs: string[]): string {
    this.nodes.push({ name, op, inputs, attrs: {}, params: {} });
    return name;
  }

  /** Global average pooling, flattening (the value 'features') and a Dense classifier 'fc'. */
  classifier(input: string, features: number, classes: number): void {
    const flat = this.simple('features', 'Flatten', [this.simple('pool', 'GlobalAvgPool', [input])]);
    this.params.set('fc.weight', { shape: [classes, features], data: new Float32Array(classes * features) });
    this.params.set('fc.bias', { shape: [classes], data: new Float32Array(classes) });
    this.nodes.push({ name: 'fc', op: 'Dense', inputs: [flat], attrs: {}, params: { weight: 'fc.weight', bias: 'fc.bias' } });
  }

  /** The graph with He-normal weights and zero biases drawn from `seed`. */
  build(input: Graph['inputs'][number], seed: number): Graph {
    return reinitialise({ inputs: [input], nodes: this.nodes, outputs: ['fc'], params: this.params }, new Rng(seed));
  }
}
