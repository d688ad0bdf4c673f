import type { Backend } from '../backend/backend.js';
import { memorySource, type SampleSource } from '../data/source.js';
import { meanAveragePrecision, topKAccuracy } from '../metrics/classification.js';
import type { HostTensor } from '../tensor.js';
import type { LossKind } from '../train/losses.js';
import {
  initialTrainState,
  mapBatches,
  type StepInfo,
  type TrainConfig,
  type TrainHooks,
  type TrainState,
  trainMethod,
} from '../train/trainer.js';
import type { Classifier, LinearisedModel } from './linearised-model.js';
import { B1, featuresProgram, logitsProgram, type Method, OUTPUT, W1 } from './programs.js';

export interface LabelledSplit {
  /** Cut values (the trunk's outputs) of every sample. */
  readonly cut: SampleSource;
  /** [N, K]: one-hot (softmax-ce) or 0/1 (sigmoid-bce). */
  readonly targets: HostTensor;
  /** [N, K] for sigmoid-bce: 0 where ignored (difficult). */
  readonly mask?: HostTensor;
}

export interface MethodMetrics {
  readonly top1?: number;
  readonly top5?: number;
  /** Multi-label: mean AP, VOC2007 11-point and area-under-curve definitions. */
  readonly mAP11?: number;
  readonly mAPArea?: number;
}

export interface MethodResult {
  readonly method: Method;
  readonly metrics: MethodMetrics;
  readonly trainSeconds: number;
  readonly finalLoss: number;
  readonly state: TrainState;
}

export interface ComparisonEvents {
  onPhase?(phase: string): void;
  onStep?(method: Method, info: StepInfo): void;
}

/** Features f(x) of every sample through the frozen head. */
export async function computeFeatures(backend: Backend, model: LinearisedModel, cut: SampleSource, batchSize: number): Promise<HostTensor> {
  return mapBatches(backend, featuresProgram(model), cut, batchSize, OUTPUT);
}

/** Logits of a trained method over a source (cut values, or features for 'activation'). */
export async function predict(
  backend: Backend,
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  params: ReadonlyMap<string, HostTensor>,
  inputs: SampleSource,
  batchSize: number,
): Promise<HostTensor> {
  return mapBatches(backend, logitsProgram(model, method, omegaBar), inputs, batchSize, 'logits', params);
}

export function evaluateLogits(logits: HostTensor, split: Pick<LabelledSplit, 'targets' | 'mask'>, loss: LossKind): MethodMetrics {
  const [n, classes] = split.targets.shape;
  if (loss === 'softmax-ce') {
    const labels = Array.from({ length: n }, (_, row) => {
      const slice = split.targets.data.subarray(row * classes, (row + 1) * classes);
      return slice.indexOf(Math.max(...slice));
    });
    return { top1: topKAccuracy(logits, labels, 1), top5: classes > 5 ? topKAccuracy(logits, labels, 5) : undefined };
  }
  const truth = split.targets.data.map((t, i) => (split.mask && split.mask.data[i] === 0 ? -1 : t));
  const tensor = { shape: split.targets.shape, data: truth };
  return { mAP11: meanAveragePrecision(logits, tensor, 'voc07').mean, mAPArea: meanAveragePrecision(logits, tensor, 'area').mean };
}

export function classifierOf(state: TrainState): Classifier {
  const weight = state.params.get(W1);
  const bias = state.params.get(B1);
  if (!weight || !bias) throw new Error(`a '${state.method}' run has no linear classifier to serve as ω̄`);
  return { weight, bias };
}

/**
 * The paper's comparison on one cut: the linear probe on frozen features gives ω̄, then the
 * gradient, full and fine-tuning models start from it. Every method sees the same data and seed.
 */
export async function compareMethods(options: {
  readonly backend: Backend;
  readonly model: LinearisedModel;
  readonly loss: LossKind;
  readonly train: LabelledSplit;
  readonly test: LabelledSplit;
  readonly methods: readonly Method[];
  readonly configs: Readonly<Record<Method, TrainConfig>>;
  /** Batch size for feature extraction and evaluation. */
  readonly evalBatchSize?: number;
  readonly events?: ComparisonEvents;
  /** A saved state to continue a method from (e.g. a checkpoint), or undefined to start it afresh. */
  readonly resume?: (method: Method) => Promise<TrainState | undefined>;
  /** Checkpointing hooks per method. */
  readonly hooks?: (method: Method) => Omit<TrainHooks, 'onStep'>;
}): Promise<MethodResult[]> {
  const { backend, model, loss, train, test, events } = options;
  const evalBatch = options.evalBatchSize ?? 256;
  events?.onPhase?.('features');
  const trainFeatures = memorySource(await computeFeatures(backend, model, train.cut, evalBatch));
  const testFeatures = memorySource(await computeFeatures(backend, model, test.cut, evalBatch));
  const classes = train.targets.shape[1];
  const zeroClassifier: Classifier = {
    weight: { shape: [classes, model.featureCount], data: new Float32Array(classes * model.featureCount) },
    bias: { shape: [classes], data: new Float32Array(classes) },
  };

  const results: MethodResult[] = [];
  const run = async (method: Method, omegaBar: Classifier) => {
    events?.onPhase?.(method);
    const config = options.configs[method];
    const started = performance.now();
    const inputs = method === 'activation' ? trainFeatures : train.cut;
    const state = await trainMethod(
      backend,
      model,
      omegaBar,
      loss,
      { inputs, targets: train.targets, mask: train.mask },
      config,
      initialTrainState(model, method, omegaBar, config.seed),
      {
        onStep: (info) => events?.onStep?.(method, info),
      },
    );
    const trainSeconds = (performance.now() - started) / 1000;
    const logits = await predict(
      backend,
      model,
      method,
      omegaBar,
      state.params,
      method === 'activation' ? testFeatures : test.cut,
      evalBatch,
    );
    const result: MethodResult = {
      method,
      metrics: evaluateLogits(logits, test, loss),
      trainSeconds: state.seconds,
      finalLoss: state.history.at(-1)?.loss ?? Number.NaN,
      state,
    };
    results.push(result);
    return result;
  };

  const activation = await run('activation', zeroClassifier);
  const omegaBar = classifierOf(activation.state);
  for (const method of options.methods) if (method !== 'activation') await run(method, omegaBar);
  return options.methods.includes('activation') ? results : results.slice(1);
}
