import { mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  constantParams,
  cutNetwork,
  evaluate,
  type Graph,
  type HostTensor,
  hostTensor,
  inferShapes,
  nodeByName,
  parameterCount,
  type ReferenceTensor,
  Rng,
  referenceKernels,
  relativeError,
} from '@gradfeat/core';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { importKerasModel, type KerasGraph } from '../src/keras/index.js';
import { branchyModel, saveModel, sequentialModel } from './keras-models.js';

/** Max |ours − TF.js| / max |TF.js| for float64 IR evaluation against TF.js's float32 layers. */
const TOLERANCE = 1e-4;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Evaluates one value of the IR on the float64 reference kernels. */
function runGraph(graph: Graph, input: HostTensor, value = graph.outputs[0]): Float64Array {
  const k = referenceKernels();
  const values = evaluate(k, graph, { [graph.inputs[0].name]: k.constant(input) }, constantParams(k, graph));
  return (values.get(value) as ReferenceTensor).data;
}

/** An NHWC batch (TF.js's layout) as NCHW (gradfeat's), by plain loops independent of the importer. */
function nhwcToNchw(data: Float32Array, [n, h, w, c]: readonly number[]): HostTensor {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch];
  return hostTensor([n, c, h, w], out);
}

function softmaxRows(logits: ArrayLike<number>, classes: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let row = 0; row < logits.length / classes; row++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < classes; j++) max = Math.max(max, logits[row * classes + j]);
    let total = 0;
    for (let j = 0; j < classes; j++) total += out[row * classes + j] = Math.exp(logits[row * classes + j] - max);
    for (let j = 0; j < classes; j++) out[row * classes + j] /= total;
  }
  return out;
}

function predict(model: tfl.LayersModel, nhwc: Float32Array, shape: readonly number[]): Promise<Float32Array> {
  const output = tf.tidy(() => model.predict(tf.tensor(nhwc, [...shape])) as tf.Tensor);
  return output.data<'float32'>().finally(() => output.dispose());
}

function uniformBatch(shape: readonly number[], seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * rng.uniform() - 1);
}

/** A model that outputs the given layer's output, e.g. the logits before a softmax. */
function truncatedAt(model: tfl.LayersModel, layer: string): tfl.LayersModel {
  return tfl.model({ inputs: model.inputs, outputs: model.getLayer(layer).output as tfl.SymbolicTensor });
}

// ---- MobileNet v1 0.25 from ../shared, against TF.js's own implementation ----

describeWithShared('importKerasModel: MobileNet v1 0.25 (../shared)', () => {
  const modelDir = sharedPath('models', 'mobilenet_v1_0.25_224');
  let graph: KerasGraph;
  let reference: tfl.LayersModel;

  beforeAll(async () => {
    graph = await importKerasModel(join(modelDir, 'model.json'));
    // TF.js loads the same files through its own HTTP handler, reading them from disk.
    const fetchFunc = async (input: string | URL | Request) =>
      new Response(await readFile(new URL(input instanceof Request ? input.url : input)));
    reference = await tfl.loadLayersModel(tf.io.http(`file://${modelDir}/model.json`, { fetchFunc }));
  });

  afterAll(() => reference?.dispose());

  it('imports a valid NCHW graph that ends in the Dense classifier', async () => {
    const shapes = inferShapes(graph);
    expect(graph.inputs).toEqual([{ name: 'input_1', shape: [-1, 3, 224, 224] }]);
    expect(graph.outputs).toEqual(['conv_preds']);
    const classifier = graph.nodes[graph.nodes.length - 1];
    expect(classifier).toMatchObject({ name: 'conv_preds', op: 'Dense', inputs: ['dropout_flat'] });
    expect(shapes.get('conv_preds')).toEqual([-1, 1000]);
    expect(shapes.get('dropout_flat')).toEqual([-1, 256]);
    expect(shapes.get('conv1_relu')).toEqual([-1, 8, 112, 112]);
    expect(shapes.get('conv_pw_13_relu')).toEqual([-1, 256, 7, 7]);
    // TF "same" on 224 with stride 2 pads one pixel, at the bottom and right.
    expect(nodeByName(graph, 'conv1').attrs).toMatchObject({ pads: [0, 0, 1, 1], strides: [2, 2], groups: 1 });
    expect(nodeByName(graph, 'conv_dw_2').attrs).toMatchObject({ pads: [0, 0, 1, 1], groups: 16 });
    expect(nodeByName(graph, 'conv_dw_3').attrs).toMatchObject({ pads: [1, 1, 1, 1], groups: 32 });
    expect(nodeByName(graph, 'conv1_relu').op).toBe('ReLU6');
    // Every float of the weight files is a parameter (BatchNorm keeps all four statistics).
    const manifest = JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8')).weightsManifest as {
      weights: { shape: number[] }[];
    }[];
    const stored = manifest.flatMap((g) => g.weights).reduce((total, w) => total + w.shape.reduce((a, b) => a * b, 1), 0);
    expect(parameterCount(graph)).toBe(stored);
  });

  it('records source, preprocessing, labels and what it changed', () => {
    const { metadata } = graph;
    expect(metadata.source).toContain("'mobilenet_0.25_224' (Keras 2.1.4)");
    expect(metadata.preprocessing).toEqual({ scale: 1 / 127.5, offset: -1, size: [224, 224], sourceLayout: 'NHWC' });
    expect(metadata.classNames).toHaveLength(1000);
    expect(metadata.classNames?.[0]).toBe('tench, Tinca tinca');
    expect(metadata.notes).toEqual([
      "layer 'conv_preds': 1×1 convolution of a 1×1 map imported as a Dense layer",
      "dropped the final softmax of layer 'act_softmax': the graph outputs logits",
      'input scaling x/127.5 − 1 assumed: model.json does not record it, and it is what Keras MobileNet v1 was trained on',
    ]);
  });

  it('computes the logits and probabilities of TF.js on CIFAR images and random inputs', async () => {
    // Four CIFAR-10 records (label byte + R, G, B planes of 32×32), upsampled ×7 by nearest neighbour, then x/127.5 − 1.
    const records = await readFile(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
    const size = 224;
    const images = new Float32Array(6 * size * size * 3);
    for (let n = 0; n < 4; n++) {
      const pixels = records.subarray(n * 3073 + 1, (n + 1) * 3073);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++)
          for (let c = 0; c < 3; c++) {
            const source = pixels[c * 1024 + Math.floor(y / 7) * 32 + Math.floor(x / 7)];
            images[((n * size + y) * size + x) * 3 + c] = source / 127.5 - 1;
          }
    }
    images.set(uniformBatch([2, size, size, 3], 7), 4 * size * size * 3);
    const shape = [6, size, size, 3];

    const logits = runGraph(graph, nhwcToNchw(images, shape));
    const expectedLogits = await predict(truncatedAt(reference, 'conv_preds'), images, shape);
    const expectedProbabilities = await predict(reference, images, shape);

    const logitError = relativeError(logits, expectedLogits);
    const probabilityError = relativeError(softmaxRows(logits, 1000), expectedProbabilities);
    console.info(
      `MobileNet vs TF.js (6 inputs): logits max abs ${logitError.absolute.toExponential(2)}, rel ${logitError.relative.toExponential(2)}; probabilities rel ${probabilityError.relative.toExponential(2)}`,
    );
    expect(logitError.relative).toBeLessThanOrEqual(TOLERANCE);
    expect(probabilityError.relative).toBeLessThanOrEqual(TOLERANCE);
    // The logits are not degenerate: the images are told apart.
    const top = (row: number) =>
      expectedLogits.subarray(row * 1000, (row + 1) * 1000).reduce((best, v, i, all) => (v > all[best] ? i : best), 0);
    expect(new Set([0, 1, 2, 3].map(top)).size).toBeGreaterThan(1);
  });

  it('cuts at block boundaries into valid trunk and head graphs', () => {
    const blocks: [string, number[]][] = [
      ['conv1_relu', [-1, 8, 112, 112]],
      ['conv_pw_5_relu', [-1, 64, 28, 28]],
      ['conv_pw_11_relu', [-1, 128, 14, 14]],
      ['conv_pw_13_relu', [-1, 256, 7, 7]],
    ];
    for (const [cut, shape] of blocks) {
      const parts = cutNetwork(graph, cut);
      expect(inferShapes(parts.trunk).get(cut)).toEqual(shape);
      expect(inferShapes(parts.head).get(parts.features)).toEqual([-1, 256]);
      expect(parts.head.inputs).toEqual([{ name: cut, shape }]);
      expect(parts.classifier.weight.shape).toEqual([1000, 256]);
    }
  });

  it('trunk then head then classifier reproduces the full network', () => {
    const parts = cutNetwork(graph, 'conv_pw_11_relu');
    const input = nhwcToNchw(uniformBatch([1, 224, 224, 3], 11), [1, 224, 224, 3]);
    const cutValue = runGraph(parts.trunk, input);
    const features = runGraph(parts.head, hostTensor([1, 128, 14, 14], Float32Array.from(cutValue)));
    const { weight, bias } = parts.classifier;
    const logits = Array.from({ length: 1000 }, (_, o) =>
      features.reduce((total, f, i) => total + f * weight.data[o * 256 + i], bias.data[o]),
    );
    expect(relativeError(logits, runGraph(graph, input)).relative).toBeLessThanOrEqual(1e-6);
  });

  it('rejects the TF.js graph model beside it with a clear message', async () => {
    await expect(importKerasModel(join(modelDir, 'imagenet', 'model.json'))).rejects.toThrow(/is a TF\.js graph model/);
  });
});

// ---- Small models built with TF.js, saved to disk, imported and compared ----

/** Deterministic non-trivial weights: the initial BatchNorm statistics would hide layout mistakes. */
function randomiseWeights(model: tfl.LayersModel, seed: number): void {
  model.setWeights(
    model.weights.map((w, i) =>
      w.name.endsWith('moving_variance')
        ? tf.randomUniform(w.read().shape, 0.5, 2, 'float32', seed + i)
        : tf.randomNormal(w.read().shape, 0, 0.5, 'float32', seed + i),
    ),
  );
}

/** Conv, flatten, reshape to `target`, conv, flatten, Dense: a reshape the IR can or cannot follow. */
function reshapeModel(target: number[]): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ name: 'c1', inputShape: [4, 4, 2], filters: 3, kernelSize: 1 }),
      tfl.layers.flatten({ name: 'flat' }),
      tfl.layers.reshape({ name: 'unflat', targetShape: target }),
      tfl.layers.conv2d({ name: 'c2', filters: 2, kernelSize: 3, padding: 'same' }),
      tfl.layers.flatten({ name: 'flat2' }),
      tfl.layers.dense({ name: 'out', units: 3 }),
    ],
  });
}

describe('importKerasModel: models built and saved by TF.js', () => {
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gradfeat-keras-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('imports a functional model with branches, padding, pooling and a flattened Dense (weights in 3 shards)', async () => {
    const model = branchyModel();
    randomiseWeights(model, 100);
    const graph = await importKerasModel(await saveModel(model, directory, 3));
    inferShapes(graph);
    expect(graph.outputs).toEqual(['predictions']);
    expect(graph.nodes.map((n) => `${n.name}:${n.op}`)).toEqual([
      'stem_linear:Conv2D',
      'stem:ReLU',
      'stem_bn:BatchNorm',
      'dw:Conv2D',
      'dw_relu6:ReLU6',
      'pad:Pad',
      'max_pool:MaxPool',
      'avg_pool:AvgPool',
      'sum:Add',
      'side:Conv2D',
      'joined:Concat',
      'leaky:LeakyReLU',
      'dilated:Conv2D',
      'flat_flat:Flatten',
      'hidden_linear:Dense',
      'hidden:ReLU',
      'predictions:Dense',
    ]);
    // Height 10 → 5 needs one pixel of padding (at the bottom), width 9 → 5 needs two (one each side).
    expect(nodeByName(graph, 'stem_linear').attrs).toMatchObject({ pads: [0, 1, 1, 1] });
    expect(graph.metadata.preprocessing).toEqual({ size: [10, 9], sourceLayout: 'NHWC' });
    expect(graph.metadata.classNames).toBeUndefined();

    const shape = [5, 10, 9, 3];
    const inputs = uniformBatch(shape, 3);
    const logits = runGraph(graph, nhwcToNchw(inputs, shape));
    const error = relativeError(softmaxRows(logits, 7), await predict(model, inputs, shape));
    // Intermediate maps too, including the pooled sum of padded, clipped depthwise outputs.
    const sum = runGraph(graph, nhwcToNchw(inputs, shape), 'sum');
    const expectedSum = nhwcToNchw(await predict(truncatedAt(model, 'sum'), inputs, shape), [5, 4, 3, 12]).data;
    console.info(
      `functional model vs TF.js: probabilities rel ${error.relative.toExponential(2)}, 'sum' rel ${relativeError(sum, expectedSum).relative.toExponential(2)}`,
    );
    expect(error.relative).toBeLessThanOrEqual(TOLERANCE);
    expect(relativeError(sum, expectedSum).relative).toBeLessThanOrEqual(TOLERANCE);
    model.dispose();
  });

  it('imports a Sequential model whose 1×1 conv head becomes the final Dense', async () => {
    const model = sequentialModel();
    randomiseWeights(model, 200);
    const graph = await importKerasModel(await saveModel(model, directory));
    expect(graph.inputs).toEqual([{ name: 'conv_input', shape: [-1, 2, 7, 7] }]);
    expect(graph.nodes.map((n) => `${n.name}:${n.op}`)).toEqual([
      'conv:Conv2D',
      'conv_bn:BatchNorm',
      'conv_relu:ReLU6',
      'pool:AvgPool',
      'gap:GlobalAvgPool',
      'drop_flat:Flatten',
      'preds:Dense',
    ]);
    expect(graph.metadata.notes).toContain("dropped the final softmax of layer 'probabilities': the graph outputs logits");
    expect(cutNetwork(graph, 'conv_relu').features).toBe('drop_flat');

    const shape = [4, 7, 7, 2];
    const inputs = uniformBatch(shape, 5);
    const logits = runGraph(graph, nhwcToNchw(inputs, shape));
    expect(relativeError(logits, await predict(truncatedAt(model, 'to_vector'), inputs, shape)).relative).toBeLessThanOrEqual(TOLERANCE);
    expect(relativeError(softmaxRows(logits, 5), await predict(model, inputs, shape)).relative).toBeLessThanOrEqual(TOLERANCE);
    model.dispose();
  });

  it('follows a flatten and reshape back to the same map without moving data', async () => {
    const model = reshapeModel([4, 4, 3]);
    randomiseWeights(model, 300);
    const graph = await importKerasModel(await saveModel(model, await mkdtemp(join(directory, 'reshape-'))));
    expect(graph.nodes.map((n) => `${n.name}:${n.op}`)).toEqual(['c1:Conv2D', 'c2:Conv2D', 'flat2_flat:Flatten', 'out:Dense']);
    const shape = [3, 4, 4, 2];
    const inputs = uniformBatch(shape, 9);
    expect(relativeError(runGraph(graph, nhwcToNchw(inputs, shape)), await predict(model, inputs, shape)).relative).toBeLessThanOrEqual(
      TOLERANCE,
    );
    model.dispose();
  });
});

// ---- Bad input: every error names the file, layer or weight at fault ----

describe('importKerasModel: errors a user can act on', () => {
  let directory: string;
  let modelFile: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gradfeat-keras-bad-'));
    const model = sequentialModel();
    modelFile = await saveModel(model, directory);
    model.dispose();
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  /** Writes a variant of the saved model's model.json into its own directory (no weight files). */
  async function variant(
    name: string,
    edit: (modelJson: { modelTopology: { config: { layers: { class_name: string; config: Record<string, unknown> }[] } } }) => void,
  ): Promise<string> {
    const modelJson = JSON.parse(await readFile(modelFile, 'utf8'));
    edit(modelJson);
    const file = join(directory, `${name}.json`);
    await writeFile(file, JSON.stringify(modelJson));
    return file;
  }

  it('names an unsupported layer class and lists the supported ones', async () => {
    const file = await variant('unsupported-layer', (m) => {
      m.modelTopology.config.layers[3].class_name = 'Conv2DTranspose';
    });
    await expect(importKerasModel(file)).rejects.toThrow(
      /layer 'pool' \(Conv2DTranspose\): this layer class is not supported; gradfeat imports InputLayer, Conv2D,/,
    );
  });

  it('names an unsupported config field and value', async () => {
    const channelsFirst = await variant('channels-first', (m) => {
      m.modelTopology.config.layers[0].config.data_format = 'channels_first';
    });
    await expect(importKerasModel(channelsFirst)).rejects.toThrow(
      /layer 'conv' \(Conv2D\): config field 'data_format' is "channels_first"; gradfeat supports 'channels_last'/,
    );
    const tanh = await variant('tanh', (m) => {
      m.modelTopology.config.layers[2].config.activation = 'tanh';
    });
    await expect(importKerasModel(tanh)).rejects.toThrow(/layer 'conv_relu' \(Activation\): config field 'activation' is "tanh"/);
  });

  it('refuses a softmax that is not the last op', async () => {
    const file = await variant('inner-softmax', (m) => {
      m.modelTopology.config.layers[2].config.activation = 'softmax';
    });
    await expect(importKerasModel(file)).rejects.toThrow(/layer 'conv_relu' \(Activation\): softmax is supported only as the last op/);
  });

  it('refuses inputs of unknown size', async () => {
    const file = await variant('dynamic-input', (m) => {
      m.modelTopology.config.layers[0].config.batch_input_shape = [null, null, null, 2];
    });
    await expect(importKerasModel(file)).rejects.toThrow(
      /layer 'conv_input' \(InputLayer\): input shape \[null,null,null,2\] has unknown sizes/,
    );
  });

  it('names a weight missing from the manifest', async () => {
    const modelJson = JSON.parse(await readFile(modelFile, 'utf8'));
    modelJson.weightsManifest[0].weights[0].name = 'renamed/kernel';
    const file = join(directory, 'renamed-weight.json');
    await writeFile(file, JSON.stringify(modelJson));
    await expect(importKerasModel(file)).rejects.toThrow(/layer 'conv' \(Conv2D\): weight 'conv\/kernel' is not in the weightsManifest/);
  });

  it('names a missing or short weight file and the bytes it must hold', async () => {
    const modelJson = JSON.parse(await readFile(modelFile, 'utf8'));
    const specs = modelJson.weightsManifest[0].weights as { shape: number[] }[];
    const expectedBytes = 4 * specs.reduce((total, w) => total + w.shape.reduce((a, b) => a * b, 1), 0);
    const shard = join(directory, 'group1-shard1of1');

    await truncate(shard, expectedBytes - 4);
    await expect(importKerasModel(modelFile)).rejects.toThrow(
      `weight file '${shard}' holds ${expectedBytes - 4} bytes, but the weights conv/kernel [3, 3, 2, 4], conv_bn/gamma [4]`,
    );
    await expect(importKerasModel(modelFile)).rejects.toThrow(`need ${expectedBytes} bytes`);

    await unlink(shard);
    await expect(importKerasModel(modelFile)).rejects.toThrow(
      new RegExp(`weight file '${shard}' is missing; .* need ${expectedBytes} bytes`),
    );
  });

  it('refuses a metadata.json whose labels do not match the classes', async () => {
    const model = sequentialModel();
    const own = await mkdtemp(join(directory, 'labels-'));
    const file = await saveModel(model, own);
    model.dispose();
    await writeFile(join(own, 'metadata.json'), JSON.stringify({ labels: ['a', 'b', 'c'] }));
    await expect(importKerasModel(file)).rejects.toThrow(/metadata\.json has 3 labels, but the model outputs 5 classes/);
    await writeFile(join(own, 'metadata.json'), JSON.stringify({ labels: ['a', 'b', 'c', 'd', 'e'] }));
    expect((await importKerasModel(file)).metadata.classNames).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('refuses a reshape that only a transpose could bring into NCHW', async () => {
    const model = reshapeModel([3, 4, 4]);
    const file = await saveModel(model, await mkdtemp(join(directory, 'transpose-')));
    model.dispose();
    await expect(importKerasModel(file)).rejects.toThrow(
      /layer 'c2' \(Conv2D\) reads 'unflat' \[3, 4, 4\], a reshape of data that is not laid out as this map in channels-first order/,
    );
  });

  it('names a file that is not a model', async () => {
    const file = join(directory, 'not-json.json');
    await writeFile(file, '{ "modelTopology": ');
    await expect(importKerasModel(file)).rejects.toThrow(`${file} is not valid JSON`);
    await expect(importKerasModel(join(directory, 'absent.json'))).rejects.toThrow(/cannot read Keras model '.*absent\.json'/);
  });
});
