/** TF.js models built and saved the way tfjs-converter lays them out, for the importer's tests. */

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';

/** Saves model.json and its weights split over `shards` files, as tfjs-converter lays them out. */
export async function saveModel(model: tfl.LayersModel, directory: string, shards = 1): Promise<string> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (saved) => {
      artifacts = saved;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('TF.js saved no weights');
  const bytes = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
  const shardBytes = Math.ceil(bytes.length / shards);
  const paths = Array.from({ length: shards }, (_, i) => `group1-shard${i + 1}of${shards}`);
  await Promise.all(paths.map((p, i) => writeFile(join(directory, p), bytes.subarray(i * shardBytes, (i + 1) * shardBytes))));
  const modelJson = { modelTopology: artifacts.modelTopology, weightsManifest: [{ paths, weights: artifacts.weightSpecs }] };
  await writeFile(join(directory, 'model.json'), JSON.stringify(modelJson));
  return join(directory, 'model.json');
}

/** Every Keras layer gradfeat imports except GlobalAveragePooling2D, on odd sizes for TF's asymmetric padding. */
export function branchyModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [10, 9, 3], name: 'image' });
  const apply = (layer: tfl.layers.Layer, x: tfl.SymbolicTensor | tfl.SymbolicTensor[]) => layer.apply(x) as tfl.SymbolicTensor;
  const stem = apply(
    tfl.layers.conv2d({ name: 'stem', filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
    input,
  );
  const normalised = apply(tfl.layers.batchNormalization({ name: 'stem_bn' }), stem);
  const depthwise = apply(tfl.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, depthMultiplier: 2, padding: 'same' }), normalised);
  const clipped = apply(tfl.layers.reLU({ name: 'dw_relu6', maxValue: 6 }), depthwise);
  const padded = apply(
    tfl.layers.zeroPadding2d({
      name: 'pad',
      padding: [
        [1, 2],
        [0, 1],
      ],
    }),
    clipped,
  );
  const maxPooled = apply(tfl.layers.maxPooling2d({ name: 'max_pool', poolSize: 3, strides: 2, padding: 'same' }), padded);
  const avgPooled = apply(tfl.layers.averagePooling2d({ name: 'avg_pool', poolSize: 3, strides: 2, padding: 'same' }), padded);
  const sum = apply(tfl.layers.add({ name: 'sum' }), [maxPooled, avgPooled]);
  const side = apply(tfl.layers.conv2d({ name: 'side', filters: 4, kernelSize: 1, useBias: false }), sum);
  const joined = apply(tfl.layers.concatenate({ name: 'joined', axis: -1 }), [sum, side]);
  const leaky = apply(tfl.layers.leakyReLU({ name: 'leaky', alpha: 0.2 }), joined);
  const dilated = apply(tfl.layers.conv2d({ name: 'dilated', filters: 5, kernelSize: 2, dilationRate: 2 }), leaky);
  // [2, 1, 5] flattened channels-last: the Dense after it must absorb the NHWC → NCHW order.
  const flat = apply(tfl.layers.flatten({ name: 'flat' }), dilated);
  const hidden = apply(tfl.layers.dense({ name: 'hidden', units: 8, activation: 'relu' }), flat);
  const dropped = apply(tfl.layers.dropout({ name: 'drop', rate: 0.5 }), hidden);
  const output = apply(tfl.layers.dense({ name: 'predictions', units: 7, activation: 'softmax' }), dropped);
  return tfl.model({ inputs: input, outputs: output, name: 'branchy' });
}

/** MobileNet's head in miniature: global pooling, reshape to a pixel, 1×1 conv, reshape, softmax. */
export function sequentialModel(): tfl.Sequential {
  return tfl.sequential({
    name: 'small_sequential',
    layers: [
      tfl.layers.conv2d({ name: 'conv', inputShape: [7, 7, 2], filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false }),
      tfl.layers.batchNormalization({ name: 'conv_bn', center: false }),
      tfl.layers.activation({ name: 'conv_relu', activation: 'relu6' }),
      tfl.layers.averagePooling2d({ name: 'pool', poolSize: 2 }),
      tfl.layers.globalAveragePooling2d({ name: 'gap' }),
      tfl.layers.reshape({ name: 'to_pixel', targetShape: [1, 1, 4] }),
      tfl.layers.dropout({ name: 'drop', rate: 0.1 }),
      tfl.layers.conv2d({ name: 'preds', filters: 5, kernelSize: 1 }),
      tfl.layers.reshape({ name: 'to_vector', targetShape: [5] }),
      tfl.layers.activation({ name: 'probabilities', activation: 'softmax' }),
    ],
  });
}

/**
 * Keras MobileNet v1's layer names and structure in miniature: 224×224 input, a stride-2 stem and
 * `blocks` depthwise-separable blocks (`conv_dw_<n>`, `conv_pw_<n>_relu`) with few channels, random
 * weights; `features` ends at the pooled features (as the docs site serves MobileNet), `classifier`
 * adds a 10-class Dense head on the same layers (as a run's --model). What a page or a run can adapt
 * where ../shared's MobileNet is absent.
 */
export function tinyMobileNet(blocks = 3): { features: tfl.LayersModel; classifier: tfl.LayersModel } {
  const input = tfl.input({ shape: [224, 224, 3], name: 'input_1' });
  const apply = (layer: tfl.layers.Layer, x: tfl.SymbolicTensor) => layer.apply(x) as tfl.SymbolicTensor;
  const bnRelu6 = (name: string, x: tfl.SymbolicTensor) =>
    apply(tfl.layers.reLU({ name: `${name}_relu`, maxValue: 6 }), apply(tfl.layers.batchNormalization({ name: `${name}_bn` }), x));
  let x = bnRelu6(
    'conv1',
    apply(tfl.layers.conv2d({ name: 'conv1', filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), input),
  );
  for (let block = 1; block <= blocks; block++) {
    const dw = tfl.layers.depthwiseConv2d({ name: `conv_dw_${block}`, kernelSize: 3, strides: 2, padding: 'same', useBias: false });
    x = bnRelu6(`conv_dw_${block}`, apply(dw, x));
    x = bnRelu6(
      `conv_pw_${block}`,
      apply(tfl.layers.conv2d({ name: `conv_pw_${block}`, filters: 4 * 2 ** block, kernelSize: 1, useBias: false }), x),
    );
  }
  const features = apply(tfl.layers.globalAveragePooling2d({ name: 'global_average_pooling2d_1' }), x);
  const logits = apply(tfl.layers.dense({ name: 'predictions', units: 10 }), features);
  return {
    features: tfl.model({ inputs: input, outputs: features, name: 'tiny_mobilenet_features' }),
    classifier: tfl.model({ inputs: input, outputs: logits, name: 'tiny_mobilenet' }),
  };
}
