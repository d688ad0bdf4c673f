import type { Graph } from '../ir/graph.js';
import { NetworkBuilder } from './builder.js';

/**
 * Randomly initialised ResNets with BatchNorm already folded (conv + bias), for benchmarks and
 * tests: the CIFAR ResNet-(6n+2) with "option A" shortcuts (spatial subsampling + zero channel
 * padding), and a single ImageNet-style basic block such as ResNet-18's layer4.
 */
class ResNetBuilder extends NetworkBuilder {
  conv3x3(name: string, input: string, inChannels: number, outChannels: number, stride: number): string {
    return this.conv(name, input, { inChannels, outChannels, kernel: 3, stride, pads: [1, 1, 1, 1] });
  }

  /** conv3×3 → ReLU → conv3×3, + shortcut, ReLU; the block's output node is named `name`. */
  basicBlock(name: string, input: string, inChannels: number, outChannels: number, stride: number, spatial: number): string {
    const first = this.simple(`${name}.relu1`, 'ReLU', [this.conv3x3(`${name}.conv1`, input, inChannels, outChannels, stride)]);
    const second = this.conv3x3(`${name}.conv2`, first, outChannels, outChannels, 1);
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
}

/** CIFAR ResNet-(6·blocksPerStage+2): 16/32/64 channels, blocks named layer{1,2,3}.{0..n−1}. */
export function cifarResNet(options: { blocksPerStage: number; classes: number; seed: number }): Graph {
  const b = new ResNetBuilder();
  let current = b.simple('stem', 'ReLU', [b.conv3x3('conv1', 'input', 3, 16, 1)]);
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
