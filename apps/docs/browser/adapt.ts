import { CLASS_NAMES_KEY, createOnnxWebBackend, type OnnxWebBackend, PREPROCESSING_KEY, traceProgram } from '@gradfeat/backend-onnx/web';
import { kerasPlugin } from '@gradfeat/backend-tfjs/keras';
import {
  attachClassifier,
  type Classifier,
  type CompiledProgram,
  classifierOf,
  compareMethods,
  cutPoints,
  deployedProgram,
  FEATURES,
  type FileSource,
  forwardProgram,
  type Graph,
  type HostTensor,
  INPUT,
  isLinearised,
  type LinearisedModel,
  LOGITS,
  linearise,
  loadNetwork,
  METHODS,
  type Method,
  mapBatches,
  memorySource,
  OUTPUT,
  oneHot,
  type PointData,
  type Preprocessing,
  pointCachePays,
  pointRowParts,
  pointRowsProgram,
  registerPlugin,
  splitRows,
  type TrainConfig,
  trainConfigOf,
} from '@gradfeat/core';
import type { RgbImage } from '@gradfeat/datasets';
import { type TransformSpec, transformedShape, transformForModel, transformImage } from '@gradfeat/datasets/transform';
import type { CutChoice, LabelledImage, MethodOutcome, PageSettings } from './protocol.js';

/** Where each depthwise-separable block of Keras's MobileNet v1 ends: the cuts the page offers. */
const BLOCK_END = /^conv_pw_(\d+)_relu$/;
/** Cuts offered: θ2 = the last one to four blocks. */
const OFFERED_CUTS = 4;
/** Images per trunk batch, as the CLI extracts (its extractBatchSize). */
const EXTRACT_BATCH = 128;

export interface AdaptEvents {
  onProgress(phase: string, done: number, total: number): void;
  onStep(method: Method, step: number, totalSteps: number, loss: number): void;
}

interface Trained {
  readonly model: LinearisedModel;
  readonly classes: readonly string[];
  readonly omegaBar: Classifier;
  readonly params: ReadonlyMap<Method, ReadonlyMap<string, HostTensor>>;
  /** images → logits per method: what the ONNX download holds, compiled once for live predictions. */
  readonly deployed: Map<Method, CompiledProgram>;
}

/**
 * The docs page's gradfeat session, run in a Web Worker: MobileNet from the site's own files, the
 * onnxruntime-web backend, and the same steps as `gradfeat compare` on a folder of images, in
 * memory: the model's centre-crop transform, the trunk once, the linearised models' point where it
 * pays, then the four methods with the CLI's training settings.
 */
export class BrowserAdapter {
  private trained?: Trained;

  private constructor(
    readonly network: Graph,
    readonly backend: OnnxWebBackend,
    readonly weightBytes: number,
    private readonly preprocessing: Preprocessing,
    private readonly transform: TransformSpec,
  ) {}

  /** Reads the network (features only: a page brings its own classes) and starts the backend. */
  static async open(modelJson: string, files: FileSource, options: { webgpu: boolean }): Promise<BrowserAdapter> {
    registerPlugin(kerasPlugin);
    const network = await loadNetwork(modelJson, { files });
    const preprocessing: Preprocessing = network.metadata?.preprocessing ?? {};
    const backend = await createOnnxWebBackend({
      executionProviders: options.webgpu ? ['webgpu', 'wasm'] : ['wasm'],
      onFallback: () => {},
    });
    const weightBytes = [...network.params.values()].reduce((total, t) => total + t.data.byteLength, 0);
    return new BrowserAdapter(network, backend, weightBytes, preprocessing, transformForModel(preprocessing, 'eval'));
  }

  /** The block ends θ2 can start after, last block first. */
  cuts(): CutChoice[] {
    const blockEnds = cutPoints(attachClassifier(this.network, 1))
      .map((point) => ({ point, block: Number(BLOCK_END.exec(point.name)?.[1]) }))
      .filter(({ block }) => Number.isInteger(block));
    const last = Math.max(...blockEnds.map(({ block }) => block));
    return blockEnds
      .filter(({ block }) => block < last)
      .slice(-OFFERED_CUTS)
      .reverse()
      .map(({ point, block }) => ({ name: point.name, blocks: last - block, headParameters: point.headParameters }));
  }

  async train(
    classes: readonly string[],
    train: readonly LabelledImage[],
    test: readonly LabelledImage[],
    settings: PageSettings,
    events: AdaptEvents,
  ): Promise<MethodOutcome[]> {
    this.release();
    const model = linearise(attachClassifier(this.network, classes.length), {
      cut: settings.cut,
      parametrisation: settings.parametrisation,
      finetuneParametrisation: 'standard',
    });
    const cutValues = async (images: readonly LabelledImage[], phase: string) =>
      memorySource(
        await mapBatches(
          this.backend,
          forwardProgram(model.trunk),
          memorySource(this.preprocess(images)),
          EXTRACT_BATCH,
          OUTPUT,
          new Map(),
          (done, total) => events.onProgress(phase, done, total),
        ),
      );
    const trainCut = await cutValues(train, 'trunk: training images');
    const testCut = await cutValues(test, 'trunk: held-out images');
    const methods: Method[] = ['activation', ...settings.methods.filter((m) => m !== 'activation')];
    const point = methods.some(isLinearised) && pointCachePays(model) ? await this.linearisationPoint(model, trainCut, events) : undefined;
    const targets = (images: readonly LabelledImage[]) =>
      oneHot(
        images.map((i) => i.label),
        classes.length,
      );
    const results = await compareMethods({
      backend: this.backend,
      model,
      loss: 'softmax-ce',
      train: { cut: trainCut, targets: targets(train), point },
      test: { cut: testCut, targets: targets(test) },
      methods,
      configs: Object.fromEntries(METHODS.map((m) => [m, trainConfigOf(settings.training[m], settings.seed)])) as Record<
        Method,
        TrainConfig
      >,
      events: {
        onPhase: (phase) => events.onProgress(phase, 0, 1),
        onStep: (method, info) => events.onStep(method, info.step, info.totalSteps, info.loss),
      },
    });
    const omegaBar = classifierOf(results[0].state);
    const params = new Map(results.map((r) => [r.method, r.state.params]));
    const deployed = new Map<Method, CompiledProgram>();
    for (const method of methods) {
      deployed.set(
        method,
        await this.backend.compile(deployedProgram(model, method, omegaBar, params.get(method) as Map<string, HostTensor>), {
          name: `${method} model`,
        }),
      );
    }
    this.trained = { model, classes, omegaBar, params, deployed };
    return results.map((r) => ({
      method: r.method,
      heldOutAccuracy: r.metrics.top1 ?? Number.NaN,
      finalLoss: r.finalLoss,
      trainSeconds: r.trainSeconds,
      losses: r.state.history.map((record) => record.loss),
    }));
  }

  /** Class probabilities of one image under every trained method. */
  async predict(image: RgbImage): Promise<Partial<Record<Method, number[]>>> {
    const trained = this.trained;
    if (!trained) return {};
    const input = this.preprocess([{ label: 0, image }]);
    const probabilities: Partial<Record<Method, number[]>> = {};
    for (const [method, program] of trained.deployed) {
      const { [LOGITS]: logits } = await program.run({ [INPUT]: input });
      probabilities[method] = softmax(logits.data);
    }
    return probabilities;
  }

  /** The trained method as a standalone ONNX model (images → logits), its class names and preprocessing in the metadata. */
  exportOnnx(method: Method): Uint8Array {
    const trained = this.trained;
    const params = trained?.params.get(method);
    if (!trained || !params) throw new Error(`'${method}' has not been trained yet`);
    // The exported model takes NCHW input whatever layout the source network had.
    const { sourceLayout: _, ...preprocessing } = this.preprocessing;
    return traceProgram(deployedProgram(trained.model, method, trained.omegaBar, params), {
      name: `mobilenet-v1-0.25-${method}`,
      docString: `MobileNet v1 0.25 adapted by gradfeat (${method}, θ2 after ${trained.model.cut}) to ${trained.classes.length} classes`,
      metadata: {
        [CLASS_NAMES_KEY]: JSON.stringify(trained.classes),
        [PREPROCESSING_KEY]: JSON.stringify(preprocessing),
        method,
        cut: trained.model.cut,
      },
    }).model;
  }

  /** The model's input for each image: the CLI's evaluation transform (resize the shorter side, centre crop, scale). */
  private preprocess(images: readonly LabelledImage[]): HostTensor {
    const shape = transformedShape(this.transform);
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(images.length * size);
    // A centre crop draws no random numbers.
    const noRandomness = () => {
      throw new Error('the evaluation transform is deterministic');
    };
    images.forEach(({ image }, i) => {
      transformImage(image, this.transform, noRandomness, data, i * size);
    });
    return { shape: [images.length, ...shape], data };
  }

  private async linearisationPoint(model: LinearisedModel, cut: ReturnType<typeof memorySource>, events: AdaptEvents): Promise<PointData> {
    const rows = await mapBatches(this.backend, pointRowsProgram(model), cut, EXTRACT_BATCH, OUTPUT, new Map(), (done, total) =>
      events.onProgress('point', done, total),
    );
    const { [FEATURES]: features, ...residuals } = splitRows(memorySource(rows), pointRowParts(model));
    return { features, residuals };
  }

  private release(): void {
    for (const program of this.trained?.deployed.values() ?? []) program.dispose();
    this.trained = undefined;
  }
}

function softmax(logits: Float32Array): number[] {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / total);
}
