import type { Graph, Node } from '../ir/graph.js';
import { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';
import { reinitialise } from '../transforms/reinitialise.js';

/**
 * Randomly initialised ResNets with BatchNorm already folded (conv + bias), for benchmarks and
 * tests: the CIFAR ResNet-(6n+2) with "option A" shortcuts (spatial subsampling + zero channel
 * padding), and a single ImageNet-style basic block such as ResNet-18's layer4.
 */
class ResNetBuilder {
  readonly nodes: Node[] = [];
  readonly params = new Map<string, HostTensor>();

  conv(name: string, input: string, inChannels: number, outChannels: number, stride: number, kernel = 3): string {
    this.params.set(`${name}.weight`, {
      shape: [outChannels, inChannels, kernel, kernel],
      data: new Float32Array(outChannels * inChannels * kernel * kernel),
    });
    this.params.set(`${name}.bias`, { shape: [outChannels], data: new Float32Array(outChannels) });
    const pad = (kernel - 1) / 2;
    this.nodes.push({
      name,
      op: 'Conv2D',
      inputs: [input],
      attrs: { strides: [stride, stride], pads: [pad, pad, pad, pad], dilations: [1, 1], groups: 1 },
      params: { weight: `${name}.weight`, bias: `${name}.bias` },
    });
    return name;
  }

  simple(name: string, op: 'ReLU' | 'Add' | 'GlobalAvgPool' | 'Flatten', inputs: string[]): string {
    this.nodes.push({ name, op, inputs, attrs: {}, params: {} });
    return name;
  }

  /** conv3×3 → ReLU → conv3×3, + shortcut, ReLU; the block's output node is named `name`. */
  basicBlock(name: string, input: string, inChannels: number, outChannels: number, stride: number, spatial: number): string {
    const first = this.simple(`${name}.relu1`, 'ReLU', [this.conv(`${name}.conv1`, input, inChannels, outChannels, stride)]);
    const second = this.conv(`${name}.conv2`, first, outChannels, outChannels, 1);
    let shortcut = input;
    if (stride !== 1 || inChannels !== outChannels) {
      const extra = outChannels - inChannels;
      const sliced = `${name}.shortcut.slice`;
      this.nodes.push({
        name: sliced,
        op: 'Slice',
        inputs: [input],
        attrs: { begins: [0, 0, 0], ends: [inChannels, spatial, spatial], steps: [1, stride, stride] },
        params: {},
      });
      shortcut = `${name}.shortcut`;
      this.nodes.push({
        name: shortcut,
        op: 'Pad',
        inputs: [sliced],
        attrs: { pads: [extra / 2, 0, 0, extra - extra / 2, 0, 0] },
        params: {},
      });
    }
    return this.simple(name, 'ReLU', [this.simple(`${name}.add`, 'Add', [second, shortcut])]);
  }

  classifier(input: string, features: number, classes: number): void {
    const flat = this.simple('features', 'Flatten', [this.simple('pool', 'GlobalAvgPool', [input])]);
    this.params.set('fc.weight', { shape: [classes, features], data: new Float32Array(classes * features) });
    this.params.set('fc.bias', { shape: [classes], data: new Float32Array(classes) });
    this.nodes.push({ name: 'fc', op: 'Dense', inputs: [flat], attrs: {}, params: { weight: 'fc.weight', bias: 'fc.bias' } });
  }

  build(input: Graph['inputs'][number], seed: number): Graph {
    return reinitialise({ inputs: [input], nodes: this.nodes, outputs: ['fc'], params: this.params }, new Rng(seed));
  }
}

/** CIFAR ResNet-(6·blocksPerStage+2): 16/32/64 channels, blocks named layer{1,2,3}.{0..n−1}. */
export function cifarResNet(options: { blocksPerStage: number; classes: number; seed: number }): Graph {
  const b = new ResNetBuilder();
  let current = b.simple('stem', 'ReLU', [b.conv('conv1', 'input', 3, 16, 1)]);
  let channels = 16;
  let spatial = 32;
  [16, 32, 64].forEach((width, stage) => {
    for (let block = 0; block < options.blocksPerStage; block++) {
      const stride = stage > 0 && block === 0 ? 2 : 1;
      current = b.basicBlock(`layer${stage + 1}.${block}`, current, channels, width, stride, spatial);
      if (stride === 2) spatial /= 2;
      channels = width;
    }
  });
  b.classifier(current, 64, options.classes);
  return b.build({ name: 'input', shape: [-1, 3, 32, 32] }, options.seed);
}

/** One identity-shortcut basic block on [channels, size, size] inputs, then pooling and a classifier. */
export function basicBlockNetwork(options: { channels: number; size: number; classes: number; seed: number }): Graph {
  const b = new ResNetBuilder();
  b.classifier(b.basicBlock('block', 'input', options.channels, options.channels, 1, options.size), options.channels, options.classes);
  return b.build({ name: 'input', shape: [-1, options.channels, options.size, options.size] }, options.seed);
}
