import type { Graph, Pads4 } from '../ir/graph.js';
import { NetworkBuilder } from './builder.js';

/** Output channels and stride of MobileNet v1's 13 depthwise-separable blocks at width 1. */
const MOBILENET_V1_BLOCKS: readonly (readonly [number, number])[] = [
  [64, 1],
  [128, 2],
  [128, 1],
  [256, 2],
  [256, 1],
  [512, 2],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [1024, 2],
  [1024, 1],
];

/** TensorFlow's "same" padding of a k×k window with this stride on a size×size input, as [top, left, bottom, right]. */
export function samePadding(size: number, kernel: number, stride: number): Pads4 {
  const total = Math.max((Math.ceil(size / stride) - 1) * stride + kernel - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, begin, total - begin, total - begin];
}

class MobileNetBuilder extends NetworkBuilder {
  /** conv_dw_<i> (depthwise 3×3) → ReLU6 → conv_pw_<i> (1×1) → ReLU6, named as Keras names them. */
  separableBlock(index: number, input: string, inChannels: number, outChannels: number, stride: number, size: number): string {
    const depthwise = this.conv(`conv_dw_${index}`, input, {
      inChannels,
      outChannels: inChannels,
      kernel: 3,
      stride,
      pads: samePadding(size, 3, stride),
      groups: inChannels,
    });
    const pointwise = this.conv(`conv_pw_${index}`, this.simple(`conv_dw_${index}_relu`, 'ReLU6', [depthwise]), {
      inChannels,
      outChannels,
      kernel: 1,
      stride: 1,
      pads: [0, 0, 0, 0],
    });
    return this.simple(`conv_pw_${index}_relu`, 'ReLU6', [pointwise]);
  }
}

/**
 * MobileNet v1 at width `alpha` on 224×224 inputs (random weights, BatchNorm folded): the stem conv
 * 'conv1' and blocks conv_dw_1/conv_pw_1 … conv_dw_13/conv_pw_13, then pooling and a classifier. The
 * values carry Keras's names, so a cut such as 'conv_pw_12_relu' means the same as on the real model.
 */
export function mobileNetV1(options: { alpha: number; classes: number; seed: number }): Graph {
  const b = new MobileNetBuilder();
  const width = (channels: number) => Math.round(channels * options.alpha);
  let size = 224;
  let channels = width(32);
  let current = b.simple('conv1_relu', 'ReLU6', [
    b.conv('conv1', 'input', { inChannels: 3, outChannels: channels, kernel: 3, stride: 2, pads: samePadding(size, 3, 2) }),
  ]);
  size = Math.ceil(size / 2);
  MOBILENET_V1_BLOCKS.forEach(([outChannels, stride], i) => {
    current = b.separableBlock(i + 1, current, channels, width(outChannels), stride, size);
    size = Math.ceil(size / stride);
    channels = width(outChannels);
  });
  b.classifier(current, channels, options.classes);
  return b.build({ name: 'input', shape: [-1, 3, 224, 224] }, options.seed);
}

/** One depthwise-separable block on [channels, size, size] inputs (stride 1), then pooling and a classifier. */
export function separableBlockNetwork(options: { channels: number; size: number; classes: number; seed: number }): Graph {
  const b = new MobileNetBuilder();
  b.classifier(b.separableBlock(1, 'input', options.channels, options.channels, 1, options.size), options.channels, options.classes);
  return b.build({ name: 'input', shape: [-1, options.channels, options.size, options.size] }, options.seed);
}
