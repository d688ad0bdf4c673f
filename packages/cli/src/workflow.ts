import { join } from 'node:path';
import {
  type Backend,
  CACHE_DIR,
  type Classifier,
  classifierOf,
  compareMethods,
  type GradientEvaluatorFactory,
  initialParams,
  isLinearised,
  type LinearisedModel,
  type LossKind,
  linearise,
  loadNetwork,
  METHODS,
  type Method,
  type MethodResult,
  type Preprocessing,
  pointCachePays,
  Rng,
  RunDirectory,
  randomClassifier,
  reinitialise,
  type TrainConfig,
  type TrainState,
  zeroClassifier,
} from '@gradfeat/core';
import {
  type CacheFill,
  type ExtractedSplit,
  type ExtractSplitOptions,
  extractSplit,
  type FeatureCache,
  featuresCacheFill,
  fillFeatureCache,
  pointCacheFill,
  pointOfCache,
  type ShardRunner,
  transformForModel,
} from '@gradfeat/datasets';
import { openBackend } from './backends.js';
import { type RunConfig, type RunConfigInput, resolveRunConfig, trainConfigFor } from './config.js';
import type { Progress } from './output.js';

/**
 * The steps `extract`, `train` and `compare` share: open the network and cut it, extract both splits
 * into the feature cache, and train the methods with checkpoints in the run directory.
 */
export interface PreparedModel {
  readonly backend: Backend;
  readonly model: LinearisedModel;
  readonly preprocessing: Preprocessing;
}

export async function prepareModel(config: RunConfig): Promise<PreparedModel> {
  const backend = await openBackend(config.backend);
  const network = await loadNetwork(config.model);
  const lineariseOptions = {
    cut: config.cut,
    parametrisation: config.parametrisation,
    finetuneParametrisation: config.finetuneParametrisation,
  };
  let model = linearise(network, lineariseOptions);
  // The paper's ablation: random instead of pre-trained parts (seeded, so reruns agree).
  const rng = new Rng(config.seed + 1);
  if (config.randomise.includes('theta1')) model = { ...model, trunk: reinitialise(model.trunk, rng) };
  if (config.randomise.includes('theta2')) {
    const fresh = linearise(reinitialise(network, rng), lineariseOptions);
    model = { ...model, gradientTermHead: fresh.head };
  }
  const preprocessing = { ...network.metadata?.preprocessing, ...config.preprocessing };
  return { backend, model, preprocessing };
}

/** For `randomise: omega`, the run's fixed random ω̄ inside the gradient term (w1 still starts at ω̄). */
export function withAblatedOmega(config: RunConfig, model: LinearisedModel, classes: number): LinearisedModel {
  if (!config.randomise.includes('omega')) return model;
  return { ...model, gradientTermClassifier: randomClassifier(classes, model.featureCount, new Rng(config.seed + 2)) };
}

export interface PreparedSplits {
  readonly train: ExtractedSplit;
  readonly test: ExtractedSplit;
  readonly loss: LossKind;
}

/** Where a run's caches live: --cache-dir, else `<out>/cache`; one directory per split (and per split's point). */
export function cacheRoot(config: RunConfig): string {
  return config.cacheDir ?? join(config.out, CACHE_DIR);
}

/** The caches of a run: each split's trunk outputs, and the training split's point and features. */
export type CacheKind = 'cut' | 'point' | 'features';

export function cacheDirectory(config: RunConfig, role: 'train' | 'test', kind: CacheKind): string {
  return join(cacheRoot(config), kind === 'cut' ? config.splits[role] : `${config.splits[role]}.${kind}`);
}

/** Writes cache shards elsewhere (a cluster's workers); undefined: in this process. */
export type ShardRunners = ((role: 'train' | 'test', kind: CacheKind) => ShardRunner) | undefined;

/** How a split's trunk outputs are extracted (the same on a coordinator and its workers). */
export function trunkExtraction(config: RunConfig, prepared: PreparedModel, role: 'train' | 'test'): ExtractSplitOptions {
  const { resizeShorter } = config.preprocessing ?? {};
  // Training reads cached trunk outputs, computed once, so its images are centre crops too.
  const mode = role === 'test' && config.testCrop === 'ten-crop' ? 'ten-crop' : 'eval';
  return {
    backend: prepared.backend,
    model: prepared.model,
    dataset: config.dataset,
    split: config.splits[role],
    transform: transformForModel(prepared.preprocessing, mode, { resizeShorter }),
    cacheDir: cacheDirectory(config, role, 'cut'),
    batchSize: config.extractBatchSize,
    dtype: config.float16Cache ? 'float16' : 'float32',
    shardBytes: config.shardBytes,
    workers: config.workers,
  };
}

export async function prepareSplits(
  config: RunConfig,
  prepared: PreparedModel,
  progress: Progress,
  runners?: ShardRunners,
): Promise<PreparedSplits> {
  const extract = (role: 'train' | 'test') =>
    extractSplit({
      ...trunkExtraction(config, prepared, role),
      runner: runners?.(role, 'cut'),
      onProgress: (p) => progress.update(`extract ${config.splits[role]}`, p.done, p.total, { shards: p.shards }),
    });
  const train = await extract('train');
  const test = await extract('test');
  if (train.classNames.join('\n') !== test.classNames.join('\n')) {
    throw new Error(`${config.dataset}: the ${config.splits.train} and ${config.splits.test} splits have different classes`);
  }
  return { train, test, loss: train.labelKind === 'multi-label' ? 'sigmoid-bce' : 'softmax-ce' };
}

/** Opens (or, with `resume`, reopens) the run directory; a resumed run must have the same config. */
export async function openRun(config: RunConfig, resume: boolean): Promise<RunDirectory<RunConfig>> {
  if (resume) {
    const existing = await RunDirectory.open(config.out);
    return RunDirectory.create(existing.path, config);
  }
  return RunDirectory.create(config.out, config);
}

/** Wall-clock seconds per phase of a run, in the order they ran: a phase lasts until the next starts. */
export class PhaseClock {
  readonly seconds: Record<string, number> = {};
  private current?: { phase: string; started: number };

  start(phase: string): void {
    this.stop();
    this.current = { phase, started: performance.now() };
  }

  stop(): void {
    if (this.current)
      this.seconds[this.current.phase] = (this.seconds[this.current.phase] ?? 0) + (performance.now() - this.current.started) / 1000;
    this.current = undefined;
  }
}

/** Where the caches' shards and the training steps' gradients are computed when not in this process. */
export interface Transport {
  readonly runners: ShardRunners;
  readonly evaluator: GradientEvaluatorFactory;
}

export async function runMethods(
  config: RunConfig,
  prepared: PreparedModel,
  splits: PreparedSplits,
  run: RunDirectory<RunConfig>,
  progress: Progress,
  resume: boolean,
  clock = new PhaseClock(),
  transport?: Transport,
): Promise<MethodResult[]> {
  const classes = splits.train.targets.shape[1];
  const model = withAblatedOmega(config, prepared.model, classes);
  const linearised = config.methods.some(isLinearised);
  const cachePoint = linearised && (config.pointCache === 'on' || (config.pointCache === 'auto' && pointCachePays(model)));
  if (cachePoint) clock.start('point');
  const point = cachePoint
    ? pointOfCache(
        model,
        await fillFeatureCache(headCacheFill(config, prepared, model, splits.train.cache, 'point'), {
          runner: transport?.runners?.('train', 'point'),
          onProgress: (p) => progress.update(`point ${config.splits.train}`, p.done, p.total, { shards: p.shards }),
        }),
      )
    : undefined;
  // Workers train the linear probe on f(x) from the shared storage; a local run computes it in memory.
  const features = transport && (await trainFeatures(config, prepared, model, splits, progress, transport.runners));
  const configs = Object.fromEntries(METHODS.map((m) => [m, trainConfigFor(config, m)])) as Record<Method, TrainConfig>;
  // A checkpoint must hold exactly the parameters a fresh run of its method starts from.
  const expected = (method: Method) => initialParams(model, method, zeroClassifier(classes, model.featureCount));
  return compareMethods({
    backend: prepared.backend,
    model,
    loss: splits.loss,
    train: { ...splits.train, point, features: features?.source },
    test: splits.test,
    methods: config.methods,
    configs,
    weightDecaySweep: config.weightDecaySweep,
    resume: resume ? (method) => run.loadCheckpoint(method, expected(method)) : undefined,
    hooks: () => ({
      checkpoint: (state) => run.saveCheckpoint(state),
      checkpointEvery: config.checkpointEvery,
      evaluator: transport?.evaluator,
    }),
    events: {
      onPhase: (phase) => {
        clock.start(phase);
        progress.note(`phase: ${phase}`, { phase });
      },
      onStep: (method, info) => progress.update(method, info.step, info.totalSteps, { loss: info.loss }),
    },
  });
}

/** The training split's frozen features f(x) as a cache of their own (see featuresCacheFill). */
export function trainFeatures(
  config: RunConfig,
  prepared: PreparedModel,
  model: LinearisedModel,
  splits: PreparedSplits,
  progress: Progress,
  runners?: ShardRunners,
) {
  return fillFeatureCache(headCacheFill(config, prepared, model, splits.train.cache, 'features'), {
    runner: runners?.('train', 'features'),
    onProgress: (p) => progress.update(`features ${config.splits.train}`, p.done, p.total, { shards: p.shards }),
  });
}

/** The training split's point or features cache, computed from its cut values (the same on a coordinator and its workers). */
export function headCacheFill(
  config: RunConfig,
  prepared: PreparedModel,
  model: LinearisedModel,
  cut: FeatureCache,
  kind: 'point' | 'features',
): CacheFill {
  const options = {
    backend: prepared.backend,
    model,
    cut,
    cacheDir: cacheDirectory(config, 'train', kind),
    batchSize: config.extractBatchSize,
    shardBytes: config.shardBytes,
  };
  return kind === 'point' ? pointCacheFill(options) : featuresCacheFill(options);
}

export interface TrainedRun {
  readonly run: RunDirectory;
  readonly config: RunConfig;
  /** The final (or latest checkpointed) state of every method the run trained. */
  readonly states: ReadonlyMap<Method, TrainState>;
  /** ω̄: the activation baseline's classifier. */
  readonly omegaBar: Classifier;
}

/** Reads a run directory back: its config (validated again) and each method's last checkpoint. */
export async function loadTrainedRun(dir: string): Promise<TrainedRun> {
  const run = await RunDirectory.open(dir);
  const config = resolveRunConfig(run.config as RunConfigInput);
  const states = new Map<Method, TrainState>();
  for (const method of new Set<Method>(['activation', ...config.methods])) {
    const state = await run.loadCheckpoint(method);
    if (!state) throw new Error(`${run.path}: no checkpoint for '${method}'; train it first (gradfeat train --resume --out ${run.path})`);
    states.set(method, state);
  }
  return { run, config, states, omegaBar: classifierOf(states.get('activation') as TrainState) };
}
