import { resolve } from 'node:path';
import {
  averageCrops,
  compileBatchProgram,
  featuresProgram,
  forwardProgram,
  type HostTensor,
  INPUT,
  LOGITS,
  logitsProgram,
  type Method,
  OUTPUT,
  type SignedProgram,
} from '@gradfeat/core';
import {
  fileDataset,
  IMAGE_EXTENSIONS,
  ImagePipeline,
  imageFilesUnder,
  isDirectory,
  isFile,
  listClassFolders,
  listEntries,
  openDataset,
  type TransformSpec,
} from '@gradfeat/datasets';
import { EXPORT_KEY, type ExportDescription, parseExportDescription } from './export-metadata.js';
import { loadTrainedRun, prepareModel, testTransform, withAblatedOmega } from './workflow.js';

/**
 * A trained gradfeat model ready to classify images: one method of a run directory, or a file
 * `gradfeat export` wrote. It prepares images exactly as the run prepared its test split.
 */
export interface TrainedModel {
  /** The run directory or the exported file. */
  readonly source: string;
  readonly method: Method;
  /** Output index → class name, as in the run's dataset. */
  readonly classNames: readonly string[];
  /** Decoding, resizing, cropping and normalisation of each image. */
  readonly transform: TransformSpec;
  /** What runs the model: a gradfeat backend's name, or 'onnxruntime (exported file)'. */
  readonly runtime: string;
  /** Logits of preprocessed images ([rows, 3, H, W] → [rows, classes]); an image's crops are consecutive rows. */
  logits(images: HostTensor): Promise<HostTensor>;
  /** Frees the runtime's sessions. */
  close(): Promise<void>;
}

/** Which method and backend `loadTrainedModel` uses. */
export interface LoadTrainedModelOptions {
  /** The method of a run to load (default 'full'); an exported file has its own. */
  readonly method?: Method;
  /** The backend for a run (default: the fastest that starts); an exported file runs in ONNX Runtime. */
  readonly backend?: string;
}

/**
 * Opens a run directory (written by `gradfeat train` or `compare`) or an .onnx file written by
 * `gradfeat export`, for {@link predict}.
 */
export async function loadTrainedModel(path: string, options: LoadTrainedModelOptions = {}): Promise<TrainedModel> {
  if (await isDirectory(path)) return loadRunModel(path, options);
  if (await isFile(path)) return loadExportedModel(path, options);
  throw new Error(`${path}: no such run directory or exported model file`);
}

async function loadRunModel(dir: string, options: LoadTrainedModelOptions): Promise<TrainedModel> {
  const method = options.method ?? 'full';
  const trained = await loadTrainedRun(dir);
  const state = trained.states.get(method);
  if (!state) throw new Error(`${trained.run.path}: the run did not train '${method}' (it has ${[...trained.states.keys()].join(', ')})`);
  const config = { ...trained.config, backend: options.backend ?? trained.config.backend };
  const prepared = await prepareModel(config);
  const model = withAblatedOmega(config, prepared.model, trained.omegaBar.weight.shape[0]);
  const { classNames } = await openDataset(config.dataset, config.splits.train);
  // The same programs the run's evaluation ran: trunk → cut (→ features for the probe) → the method's logits.
  const backend = prepared.backend;
  const none = new Map<string, HostTensor>();
  const stage = async (program: SignedProgram, output: string, extra: ReadonlyMap<string, HostTensor>, name: string) => ({
    program: await compileBatchProgram(backend, program, { name }),
    output,
    extra,
  });
  const programs = [await stage(forwardProgram(model.trunk), OUTPUT, none, 'trunk')];
  if (method === 'activation') programs.push(await stage(featuresProgram(model), OUTPUT, none, 'features'));
  programs.push(await stage(logitsProgram(model, method, trained.omegaBar), LOGITS, state.params, method));
  return {
    source: trained.run.path,
    method,
    classNames,
    transform: prepared.transforms.test,
    runtime: backend.name,
    async logits(images) {
      let value = images;
      for (const { program, extra, output } of programs)
        value = (await program.run({ [INPUT]: value, ...Object.fromEntries(extra) }))[output];
      return value;
    },
    async close() {
      for (const { program } of programs) program.dispose();
    },
  };
}

async function loadExportedModel(path: string, options: LoadTrainedModelOptions): Promise<TrainedModel> {
  const { modelMetadata, openOnnxModelSession, readOnnxModelInfo } = await import('@gradfeat/backend-onnx');
  const info = await readOnnxModelInfo(path);
  const described = info.metadata.get(EXPORT_KEY);
  if (described === undefined) {
    throw new Error(
      `${path}: not written by gradfeat export (no '${EXPORT_KEY}' metadata), so its preprocessing and classes are unknown; predict with --run DIR, or export the run again`,
    );
  }
  const description: ExportDescription = parseExportDescription(described, path);
  if (options.method && options.method !== description.method) {
    throw new Error(`${path}: holds the '${description.method}' model, not '${options.method}'`);
  }
  const metadata = modelMetadata(path, info.metadata);
  if (!metadata.preprocessing || !metadata.classNames) throw new Error(`${path}: the export states no preprocessing or class names`);
  const session = await openOnnxModelSession(path);
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  return {
    source: resolve(path),
    method: description.method,
    classNames: metadata.classNames,
    transform: testTransform(metadata.preprocessing, description.testCrop, description.resizeShorter),
    runtime: 'onnxruntime (exported file)',
    logits: async (images) => (await session.run({ [input]: images }))[output],
    close: () => session.release(),
  };
}

/** One image's prediction: the most probable classes, best first. */
export interface Prediction {
  readonly file: string;
  readonly top: readonly { readonly className: string; readonly classIndex: number; readonly probability: number }[];
  /** The class folder the image came from, when the input was a folder of class folders. */
  readonly label?: string;
}

/** How `predict` batches and reports. */
export interface PredictOptions {
  /** Classes reported per image (default 5, at most the number of classes). */
  readonly top?: number;
  /** Images per batch (default 64). */
  readonly batchSize?: number;
  /** Image-decoding threads (default one per core; 0 decodes on the calling thread). */
  readonly workers?: number;
  /** Called after each batch with the images done and the total. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What `predict` returns. */
export interface PredictionResult {
  readonly predictions: readonly Prediction[];
  /** Top-1 accuracy when the input was a folder of class folders named like the model's classes. */
  readonly accuracy?: number;
}

/**
 * Classifies image files (JPEG or PNG) with a trained model: its class names and softmax
 * probabilities. `inputs` are files or folders; a folder is searched recursively, and a folder of
 * class folders named like the model's classes also gives the accuracy.
 */
export async function predict(model: TrainedModel, inputs: readonly string[], options: PredictOptions = {}): Promise<PredictionResult> {
  const { paths, labels } = await listImages(inputs, model.classNames);
  if (paths.length === 0) throw new Error(`no JPEG or PNG images in ${inputs.join(', ')}`);
  const dataset = fileDataset('images to classify', model.classNames, paths, {
    kind: 'single-label',
    classCount: model.classNames.length,
    // Images without a class folder get -1: predict reads the labels only to score labelled folders.
    labels: labels ?? new Int32Array(paths.length).fill(-1),
  });
  const pipeline = await ImagePipeline.create(dataset, { transform: model.transform, workers: options.workers });
  const top = Math.min(options.top ?? 5, model.classNames.length);
  const predictions: Prediction[] = [];
  let correct = 0;
  try {
    for await (const batch of pipeline.batches({ batchSize: options.batchSize ?? 64 })) {
      const logits = averageCrops(await model.logits(batch.images), pipeline.cropsPerImage);
      const classes = logits.shape[1];
      batch.indices.forEach((index, row) => {
        const probabilities = softmax(logits.data.subarray(row * classes, (row + 1) * classes));
        // Ties go to the lower class index, as the run's own top-1 accuracy counts them.
        const ranked = Array.from(probabilities.keys())
          .sort((a, b) => probabilities[b] - probabilities[a] || a - b)
          .slice(0, top);
        if (labels && ranked[0] === labels[index]) correct++;
        predictions.push({
          file: paths[index],
          top: ranked.map((c) => ({ className: model.classNames[c], classIndex: c, probability: probabilities[c] })),
          ...(labels && { label: model.classNames[labels[index]] }),
        });
      });
      options.onProgress?.(predictions.length, paths.length);
    }
  } finally {
    await pipeline.close();
  }
  return { predictions, ...(labels && { accuracy: correct / paths.length }) };
}

function softmax(logits: Float32Array): Float64Array {
  const max = Math.max(...logits);
  const exps = Float64Array.from(logits, (v) => Math.exp(v - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / total);
}

/**
 * The image files to classify, sorted within each folder. A single folder whose sub-folders are all
 * class names of the model is read as labelled (root/<class>/<image>), like `folder:` datasets.
 */
async function listImages(inputs: readonly string[], classNames: readonly string[]): Promise<{ paths: string[]; labels?: Int32Array }> {
  if (inputs.length === 1 && (await isDirectory(inputs[0]))) {
    const folders = await listEntries(inputs[0], 'directories');
    if (folders.length > 0 && folders.every((name) => classNames.includes(name))) {
      return listClassFolders(inputs[0], classNames, IMAGE_EXTENSIONS);
    }
  }
  const paths: string[] = [];
  for (const input of inputs) {
    if (await isDirectory(input)) paths.push(...(await imageFilesUnder(input)));
    else if (await isFile(input)) paths.push(input);
    else throw new Error(`${input}: no such image file or folder`);
  }
  return { paths };
}
