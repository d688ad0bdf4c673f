import {
  defaultFiles,
  FileNotFoundError,
  type FileSource,
  formatShape,
  type Graph,
  type HostTensor,
  inferShapes,
  type ModelMetadata,
  type Preprocessing,
  sameShape,
  siblingPath,
} from '@gradfeat/core/engine';
import { GraphBuilder, type KerasTensor, LAYOUT_OPS } from './builder.js';
import { LayerConfig } from './config.js';
import { LAYER_CONVERTERS } from './layers.js';
import { type KerasLayer, type KerasModel, parseTopology } from './topology.js';
import { readWeights } from './weights.js';

/** A Keras model's metadata: the common fields plus the Keras-specific ones. */
export interface KerasModelMetadata extends ModelMetadata {
  /** What the import changed on the way, e.g. a dropped final softmax or a 1×1 conv imported as Dense. */
  readonly notes: readonly string[];
}

/** A network imported from a TF.js layers model, with what the import found and changed. */
export type KerasGraph = Graph & { readonly metadata: KerasModelMetadata };

/**
 * Keras applications' MobileNet (v1) is trained on x/127.5 − 1 at 224×224 (`preprocess_input` in
 * mode 'tf'); model.json does not record it, so it is assumed for files with MobileNet's layer names.
 */
const MOBILENET_PREPROCESSING = { scale: 1 / 127.5, offset: -1 } as const;

/**
 * Imports a TF.js layers model (model.json, its weight shards and an optional metadata.json with
 * `labels` beside it) into gradfeat's NCHW IR, reading the files through `files` (default: the file
 * system in Node, fetch in a browser; or droppedFiles for files a user picked).
 *
 * Nodes keep the Keras layer names. A fused activation splits into `<layer>_linear` and `<layer>`;
 * Reshape, Flatten and Dropout add no node; a Flatten/Reshape node inserted where a consumer needs a
 * different IR shape is named `<layer>_flat` / `<layer>_nchw`. A final softmax is dropped and a 1×1
 * convolution of a 1×1 map becomes a Dense layer, so classifiers end in the Dense that `cutNetwork`
 * takes as ω; `metadata.notes` lists every such change. Cut points are node names: in Keras's
 * MobileNet v1 each block ends at `conv_pw_<n>_relu` (the README lists them with their shapes).
 */
export async function importKerasModel(modelJsonPath: string, files: FileSource = defaultFiles()): Promise<KerasGraph> {
  try {
    return await importFrom(modelJsonPath, files);
  } catch (error) {
    // Errors found past the reading (shape inference, say) name the node; the file is named here.
    if ((error as Error).message.includes(modelJsonPath)) throw error;
    throw new Error(`${modelJsonPath}: ${(error as Error).message}`, { cause: error });
  }
}

async function importFrom(modelJsonPath: string, files: FileSource): Promise<KerasGraph> {
  const modelJson = await readJson(files, modelJsonPath, 'Keras model');
  const model = parseTopology(modelJson, modelJsonPath);
  const weights = await readWeights((modelJson as { weightsManifest?: unknown }).weightsManifest, modelJsonPath, files);
  const builder = new GraphBuilder(new Set(model.layers.map((l) => l.name)), (message) => {
    throw new Error(`${modelJsonPath}: ${message}`);
  });
  const tensors = convertLayers(model, weights, builder, modelJsonPath);
  const outputs = model.outputs.map((name) => builder.canonical(tensors.get(name) as KerasTensor, `model output '${name}'`));
  const graph: Graph = { inputs: builder.inputs, nodes: builder.nodes, outputs, params: builder.params };
  const shapes = inferShapes(graph);
  const metadata: KerasModelMetadata = {
    source: describeSource(model, modelJsonPath),
    preprocessing: preprocessingOf(model, graph, builder.notes),
    classNames: await classNamesBeside(files, modelJsonPath, shapes.get(outputs[0]) ?? []),
    notes: builder.notes,
  };
  return { ...graph, metadata };
}

const INPUT_COUNTS = { none: 'no inputs', one: 'one input', several: 'two or more inputs' } as const;

function convertLayers(
  model: KerasModel,
  weights: ReadonlyMap<string, HostTensor>,
  builder: GraphBuilder,
  file: string,
): Map<string, KerasTensor> {
  const tensors = new Map<string, KerasTensor>();
  const droppedSoftmaxes = finalSoftmaxLayers(model);
  for (const layer of model.layers) {
    const config = new LayerConfig(layer, file);
    const converter = LAYER_CONVERTERS[layer.className];
    if (!converter) {
      config.fail(`this layer class is not supported; gradfeat imports ${Object.keys(LAYER_CONVERTERS).join(', ')}`);
    }
    const arity = layer.inbound.length === 0 ? 'none' : layer.inbound.length === 1 ? 'one' : 'several';
    if (arity !== converter.inputs) config.fail(`takes ${INPUT_COUNTS[converter.inputs]}, got ${layer.inbound.length}`);
    const before = builder.nodes.length;
    tensors.set(
      layer.name,
      converter.convert({
        name: layer.name,
        config,
        inputs: layer.inbound.map((name) => tensors.get(name) as KerasTensor),
        builder,
        weight: (weightName, shape) => layerWeight(weights, config, weightName, shape),
        dropsSoftmax: droppedSoftmaxes.has(layer.name),
      }),
    );
    // The declared mapping is what the importer coverage test reads: a converter may not go beyond it.
    for (const { op } of builder.nodes.slice(before)) {
      if (!converter.emits.includes(op) && !LAYOUT_OPS.includes(op)) {
        config.fail(`the ${layer.className} converter added ${op}, which its 'emits' does not list (an importer bug)`);
      }
    }
  }
  return tensors;
}

/** The weight `<layer>/<name>` of the manifest, checked against the shape the layer config implies. */
function layerWeight(
  weights: ReadonlyMap<string, HostTensor>,
  config: LayerConfig,
  weightName: string,
  shape: readonly number[],
): HostTensor {
  const key = `${config.layer.name}/${weightName}`;
  const weight = weights.get(key);
  if (!weight) return config.fail(`weight '${key}' is not in the weightsManifest`);
  if (!sameShape(weight.shape, shape)) {
    config.fail(
      `weight '${key}' is ${formatShape(weight.shape)} in the weightsManifest, but the layer's config implies ${formatShape(shape)}`,
    );
  }
  return weight;
}

/** Layers that pass a tensor on unchanged, up to its shape. */
function isPassThrough(layer: KerasLayer): boolean {
  return (
    ['Reshape', 'Flatten', 'Dropout'].includes(layer.className) ||
    (layer.className === 'Activation' && layer.config.activation === 'linear')
  );
}

/**
 * Softmax layers (or layers with a softmax activation) whose output reaches a model output through
 * pass-through layers only and feeds nothing else: dropped, so that the graph outputs logits.
 */
function finalSoftmaxLayers(model: KerasModel): Set<string> {
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  const readers = new Map<string, number>();
  for (const layer of model.layers) for (const input of layer.inbound) readers.set(input, (readers.get(input) ?? 0) + 1);
  const readOnce = (name: string) => (readers.get(name) ?? 0) === 1;
  const found = new Set<string>();
  for (const output of model.outputs) {
    if ((readers.get(output) ?? 0) > 0) continue;
    let layer = byName.get(output);
    while (layer && isPassThrough(layer) && layer.inbound.length === 1 && readOnce(layer.inbound[0])) layer = byName.get(layer.inbound[0]);
    if (layer && (layer.className === 'Softmax' || layer.config.activation === 'softmax')) found.add(layer.name);
  }
  return found;
}

function describeSource(model: KerasModel, file: string): string {
  const version = model.kerasVersion && (/^\d/.test(model.kerasVersion) ? `Keras ${model.kerasVersion}` : model.kerasVersion);
  const details = [model.name && `'${model.name}'`, version && `(${version})`].filter(Boolean).join(' ');
  return `TF.js layers model ${details ? `${details} ` : ''}from ${file}`;
}

/** Keras applications' MobileNet v1: depthwise blocks conv_dw_<n> followed by conv_pw_<n>. */
function isKerasMobileNetV1(model: KerasModel): boolean {
  const names = new Set(model.layers.map((l) => `${l.className}:${l.name}`));
  return names.has('DepthwiseConv2D:conv_dw_1') && names.has('Conv2D:conv_pw_1');
}

/** Size and layout come from the input layer; the pixel scaling only for known MobileNet files. */
function preprocessingOf(model: KerasModel, graph: Graph, notes: string[]): Preprocessing | undefined {
  const input = graph.inputs[0];
  if (graph.inputs.length !== 1 || input.shape.length !== 4) return undefined;
  const size = [input.shape[2], input.shape[3]] as const;
  if (!isKerasMobileNetV1(model)) return { size, sourceLayout: 'NHWC' };
  notes.push('input scaling x/127.5 − 1 assumed: model.json does not record it, and it is what Keras MobileNet v1 was trained on');
  return { size, sourceLayout: 'NHWC', ...MOBILENET_PREPROCESSING };
}

/** `labels` from a metadata.json beside model.json (as published with TF.js models), if there is one. */
async function classNamesBeside(files: FileSource, modelFile: string, outputShape: readonly number[]): Promise<string[] | undefined> {
  const file = siblingPath(modelFile, 'metadata.json');
  const metadata = await readJson(files, file, 'model metadata').catch((error: Error) => {
    if (error.cause instanceof FileNotFoundError) return undefined;
    throw error;
  });
  const labels = (metadata as { labels?: unknown } | undefined)?.labels;
  if (labels === undefined) return undefined;
  if (!Array.isArray(labels) || !labels.every((l) => typeof l === 'string')) throw new Error(`${file}: "labels" is not a list of strings`);
  const classes = outputShape[outputShape.length - 1];
  if (labels.length !== classes) throw new Error(`${file} has ${labels.length} labels, but the model outputs ${classes} classes`);
  return labels;
}

async function readJson(files: FileSource, file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = new TextDecoder().decode(await files.read(file));
  } catch (error) {
    throw new Error(`cannot read ${what} '${file}': ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}
