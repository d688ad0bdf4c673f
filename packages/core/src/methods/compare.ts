import { type Backend, OUTPUT } from '../backend/backend.js';
import { mapBatches } from '../backend/batch-program.js';
import { memorySource, type SampleSource, subsetSource } from '../data/source.js';
import { meanAveragePrecision, topKAccuracy } from '../metrics/classification.js';
import { Rng } from '../random.js';
import type { HostTensor } from '../tensor.js';
import type { LossKind } from '../train/losses.js';
import {
  initialTrainState,
  type PointData,
  type StepInfo,
  type TrainConfig,
  type TrainHooks,
  type TrainState,
  trainMethod,
} from '../train/trainer.js';
import { type Classifier, type LinearisedModel, zeroClassifier } from './linearised-model.js';
import { B1, featuresProgram, LOGITS, logitsProgram, type Method, W1 } from './programs.js';

/** A split as the methods read it: cut values (or features) with targets. */
export interface LabelledSplit {
  /** Cut values (the trunk's outputs): `crops` consecutive rows per sample. */
  readonly cut: SampleSource;
  /** Rows per sample, e.g. 10 for the ten-crop test protocol (logits are averaged). Default 1. */
  readonly crops?: number;
  /** Shape [N, K]: one-hot (softmax-ce) or 0/1 (sigmoid-bce). */
  readonly targets: HostTensor;
  /** Shape [N, K], for sigmoid-bce: 0 where ignored (difficult). */
  readonly mask?: HostTensor;
  /** The linearised models' cached point per sample (training split); without it they evaluate the head every step. */
  readonly point?: PointData;
  /** The frozen features f(x) per sample when already computed (e.g. cached on shared storage); else computed here. */
  readonly features?: SampleSource;
}

/** A method's test metrics. */
export interface MethodMetrics {
  readonly top1?: number;
  readonly top5?: number;
  /** Multi-label: mean AP, VOC2007 11-point and area-under-curve definitions. */
  readonly mAP11?: number;
  readonly mAPArea?: number;
}

/** One method's outcome in `compareMethods`. */
export interface MethodResult {
  readonly method: Method;
  readonly metrics: MethodMetrics;
  readonly trainSeconds: number;
  readonly finalLoss: number;
  /** The weight decay it trained with (chosen by the sweep when there was one). */
  readonly weightDecay: number;
  readonly weightDecaySweep?: readonly SweepPoint[];
  readonly state: TrainState;
}

/** Progress callbacks of `compareMethods`. */
export interface ComparisonEvents {
  /** A phase (features, a method, the sweep) starts. */
  onPhase?(phase: string): void;
  /** A training step of a method finished. */
  onStep?(method: Method, info: StepInfo): void;
}

/**
 * Batch size of feature computation and evaluation by default. A features cache computed elsewhere in
 * batches of this size (the same batches) holds bit for bit the values computed here.
 */
export const EVAL_BATCH_SIZE = 256;

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
  return mapBatches(backend, logitsProgram(model, method, omegaBar), inputs, batchSize, LOGITS, params);
}

/** Mean of each run of `crops` consecutive rows. */
export function averageCrops(logits: HostTensor, crops: number): HostTensor {
  if (crops === 1) return logits;
  const [rows, classes] = logits.shape;
  if (rows % crops !== 0) throw new Error(`${rows} rows of logits are not a whole number of ${crops}-crop samples`);
  const data = new Float32Array((rows / crops) * classes);
  for (let row = 0; row < rows; row++) {
    for (let c = 0; c < classes; c++) data[Math.floor(row / crops) * classes + c] += logits.data[row * classes + c] / crops;
  }
  return { shape: [rows / crops, classes], data };
}

/** Metrics of logits against a split's targets: top-1/top-5, or VOC07 and area mAP for multi-label; crops are averaged first. */
export function evaluateLogits(
  rowLogits: HostTensor,
  split: Pick<LabelledSplit, 'targets' | 'mask' | 'crops'>,
  loss: LossKind,
): MethodMetrics {
  const logits = averageCrops(rowLogits, split.crops ?? 1);
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

/** The linear classifier (w1, b1) of a trained state: ω̄ when it is the activation baseline's. */
export function classifierOf(state: TrainState): Classifier {
  const weight = state.params.get(W1);
  const bias = state.params.get(B1);
  if (!weight || !bias) throw new Error(`a '${state.method}' run has no linear classifier to serve as ω̄`);
  return { weight, bias };
}

/** Choose a method's weight decay on a held-out part of the training split. */
export interface WeightDecaySweep {
  readonly values: readonly number[];
  /** Fraction of the training split held out (seeded split). */
  readonly heldOutFraction: number;
  readonly methods: readonly Method[];
}

/** One weight decay tried by the sweep, with its held-out metric. */
export interface SweepPoint {
  readonly weightDecay: number;
  readonly heldOutMetric: number;
}

/** Top-1 for single-label data, VOC07 11-point mAP for multi-label: the number a sweep maximises. */
function headlineMetric(metrics: MethodMetrics): number {
  return metrics.top1 ?? metrics.mAP11 ?? Number.NaN;
}

async function subsetSplit(split: LabelledSplit, rows: readonly number[]): Promise<LabelledSplit> {
  const point = split.point && {
    features: subsetSource(split.point.features, rows),
    residuals: Object.fromEntries(Object.entries(split.point.residuals).map(([name, source]) => [name, subsetSource(source, rows)])),
  };
  return {
    cut: subsetSource(split.cut, rows),
    targets: await memorySource(split.targets).read(rows),
    mask: split.mask && (await memorySource(split.mask).read(rows)),
    point,
  };
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
  readonly weightDecaySweep?: WeightDecaySweep;
}): Promise<MethodResult[]> {
  const { backend, model, loss, train, test, events } = options;
  if ((train.crops ?? 1) !== 1) throw new Error('training data must have one row per sample (crops are for evaluation)');
  const evalBatch = options.evalBatchSize ?? EVAL_BATCH_SIZE;
  events?.onPhase?.('features');
  const features = {
    train: train.features ?? memorySource(await computeFeatures(backend, model, train.cut, evalBatch)),
    test: test.features ?? memorySource(await computeFeatures(backend, model, test.cut, evalBatch)),
  };
  const classes = train.targets.shape[1];

  /** Trains on `fit`, evaluates on `evaluate`; `inputsOf` picks features or cut values. */
  const trainAndEvaluate = async (
    method: Method,
    omegaBar: Classifier,
    config: TrainConfig,
    fit: LabelledSplit,
    evaluate: LabelledSplit,
    start: TrainState,
    hooks: Omit<TrainHooks, 'onStep'> = {},
  ) => {
    const state = await trainMethod(
      backend,
      model,
      omegaBar,
      loss,
      { inputs: fit.cut, targets: fit.targets, mask: fit.mask, point: fit.point },
      config,
      start,
      {
        ...hooks,
        onStep: (info) => events?.onStep?.(method, info),
      },
    );
    const logits = await predict(backend, model, method, omegaBar, state.params, evaluate.cut, evalBatch);
    return { state, metrics: evaluateLogits(logits, evaluate, loss) };
  };

  const splitsFor = (method: Method) =>
    method === 'activation' ? { train: { ...train, cut: features.train }, test: { ...test, cut: features.test } } : { train, test };

  const chooseWeightDecay = async (method: Method, omegaBar: Classifier, config: TrainConfig) => {
    const sweep = options.weightDecaySweep;
    if (!sweep?.methods.includes(method)) return { config, sweep: undefined };
    const order = new Rng(config.seed).permutation(train.targets.shape[0]);
    const heldOut = Math.max(1, Math.round(order.length * sweep.heldOutFraction));
    const splits = splitsFor(method);
    const fit = await subsetSplit(splits.train, order.slice(heldOut));
    const evaluate = await subsetSplit(splits.train, order.slice(0, heldOut));
    const points: SweepPoint[] = [];
    for (const weightDecay of sweep.values) {
      events?.onPhase?.(`${method} weight decay ${weightDecay}`);
      const trial = { ...config, optimiser: { ...config.optimiser, weightDecay } };
      const { metrics } = await trainAndEvaluate(
        method,
        omegaBar,
        trial,
        fit,
        evaluate,
        initialTrainState(model, method, omegaBar, config.seed),
      );
      points.push({ weightDecay, heldOutMetric: headlineMetric(metrics) });
    }
    const best = points.reduce((a, b) => (b.heldOutMetric > a.heldOutMetric ? b : a));
    return { config: { ...config, optimiser: { ...config.optimiser, weightDecay: best.weightDecay } }, sweep: points };
  };

  const results: MethodResult[] = [];
  const run = async (method: Method, omegaBar: Classifier) => {
    const { config, sweep } = await chooseWeightDecay(method, omegaBar, options.configs[method]);
    events?.onPhase?.(method);
    const start = (await options.resume?.(method)) ?? initialTrainState(model, method, omegaBar, config.seed);
    const splits = splitsFor(method);
    const { state, metrics } = await trainAndEvaluate(method, omegaBar, config, splits.train, splits.test, start, options.hooks?.(method));
    const result: MethodResult = {
      method,
      metrics,
      trainSeconds: state.seconds,
      finalLoss: state.history.at(-1)?.loss ?? Number.NaN,
      weightDecay: config.optimiser.weightDecay ?? 0,
      weightDecaySweep: sweep,
      state,
    };
    results.push(result);
    return result;
  };

  const activation = await run('activation', zeroClassifier(classes, model.featureCount));
  const omegaBar = classifierOf(activation.state);
  for (const method of options.methods) if (method !== 'activation') await run(method, omegaBar);
  return options.methods.includes('activation') ? results : results.slice(1);
}
