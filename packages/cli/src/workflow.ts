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
  lockDirectory,
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
  type ExtractedPoint,
  type ExtractedSplit,
  type ExtractSplitOptions,
  extractSplit,
  type FeatureCache,
  featuresCacheFill,
  fillFeatureCache,
  pointCacheFill,
  pointCacheName,
  pointOfCache,
  type ShardRunner,
  type SkippedImage,
  splitLocation,
  type TransformSpec,
  transformForModel,
} from '@gradfeat/datasets';
import { loadModel, openBackend } from './backends.js';
import { type LearningRateChange, type RunConfig, runConfigFromStored, storedRunConfig, trainConfigFor } from './config.js';
import type { Progress } from './output.js';

/**
 * The steps `extract`, `train` and `compare` share: open the network and cut it, extract both splits
 * into the feature cache, and train the methods with checkpoints in the run directory.
 */
export interface PreparedModel {
  readonly backend: Backend;
  readonly model: LinearisedModel;
  readonly preprocessing: Preprocessing;
  /** How the training and test images are prepared (training reads centre crops too: its trunk outputs are cached). */
  readonly transforms: { readonly train: TransformSpec; readonly test: TransformSpec };
}

/**
 * The run's image transforms, checked before anything is written, with errors that name the flags
 * (and the config fields) that fix them.
 */
export function runTransforms(config: RunConfig, preprocessing: Preprocessing): PreparedModel['transforms'] {
  const { mean, std, scale, offset, size } = preprocessing;
  const fix = (flags: string, field: string) => `pass ${flags} (preprocessing.${field} in a run config)`;
  if (!size) throw new Error(`${config.model}: the model file states no input size; ${fix('--image-size N', 'size')}`);
  if ((mean === undefined) !== (std === undefined)) {
    throw new Error(`${config.model}: only one of mean and std is known; ${fix('both --mean r,g,b and --std r,g,b', 'mean and .std')}`);
  }
  if (mean && (scale !== undefined || offset !== undefined)) {
    throw new Error(`${config.model}: the model file states x·scale + offset and --mean/--std were given too; use one of them`);
  }
  const { resizeShorter } = config.preprocessing ?? {};
  return {
    train: transformForModel(preprocessing, 'eval', { resizeShorter }),
    test: testTransform(preprocessing, config.testCrop, resizeShorter),
  };
}

/** How a run (or its export) prepares the images it is tested on and predicts. */
export function testTransform(preprocessing: Preprocessing, testCrop: RunConfig['testCrop'], resizeShorter?: number): TransformSpec {
  return transformForModel(preprocessing, testCrop === 'ten-crop' ? 'ten-crop' : 'eval', { resizeShorter });
}

export async function prepareModel(config: RunConfig): Promise<PreparedModel> {
  const backend = await openBackend(config.backend);
  const network = await loadModel(config.model);
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
  const { resizeShorter: _, ...stated } = config.preprocessing ?? {};
  const preprocessing: Preprocessing = { ...network.metadata?.preprocessing, ...stated };
  return { backend, model, preprocessing, transforms: runTransforms(config, preprocessing) };
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

/**
 * Refuses a test split that reads the training images (one CIFAR .bin file, one folder for both),
 * unless the config accepts it; returns whether it does, for the report to say so.
 */
export async function checkTestSplit(config: RunConfig): Promise<boolean> {
  const location = await splitLocation(config.dataset, config.splits.train);
  if (location !== (await splitLocation(config.dataset, config.splits.test))) return false;
  if (config.testOnTrainingSplit) return true;
  throw new Error(
    `${config.dataset}: the test split '${config.splits.test}' reads the same images as the training split '${config.splits.train}' (${location}), so its accuracy would be training accuracy; give a dataset with a separate test set, or pass --test-on-training-split to accept that`,
  );
}

/** The caches of a run beside each split's trunk outputs: the training split's point and features. */
export type HeadCacheKind = 'point' | 'features';

/** Every cache of a run: each split's trunk outputs ('cut'), and the training split's head caches. */
export type CacheKind = 'cut' | HeadCacheKind;

/** Writes cache shards elsewhere (a cluster's workers); undefined: in this process. */
export type ShardRunners = ((role: 'train' | 'test', kind: CacheKind) => ShardRunner) | undefined;

/** How a split's trunk outputs are extracted (the same on a coordinator and its workers). */
export function trunkExtraction(config: RunConfig, prepared: PreparedModel, role: 'train' | 'test'): ExtractSplitOptions {
  return {
    backend: prepared.backend,
    model: prepared.model,
    dataset: config.dataset,
    split: config.splits[role],
    transform: prepared.transforms[role],
    cacheDir: join(cacheRoot(config), config.splits[role]),
    batchSize: config.extractBatchSize,
    dtype: config.float16Cache ? 'float16' : 'float32',
    shardBytes: config.shardBytes,
    workers: config.workers,
    skipBadImages: config.skipBadImages,
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
  for (const [role, split] of [['train', train] as const, ['test', test] as const]) {
    const name = config.splits[role];
    const { shards, bytes, seconds } = split.cache.verification;
    progress.note(`verified the ${name} cache: ${shards} shards, ${(bytes / 2 ** 20).toFixed(1)} MiB in ${seconds.toFixed(2)} s`, {
      split: name,
      verified: split.cache.verification,
    });
    const counts = split.perClassCounts;
    progress.note(`${name}: ${split.cache.manifest.counts.images} images, ${Math.min(...counts)} to ${Math.max(...counts)} per class`, {
      split: name,
      perClassCounts: counts,
    });
    for (const warning of split.warnings) progress.note(`warning: ${warning}`, { split: name, warning });
    for (const { path, problem } of skippedImages(split))
      progress.note(`skipped ${path}: ${problem}`, { split: name, skipped: path, problem });
  }
  if (train.classNames.join('\n') !== test.classNames.join('\n')) {
    throw new Error(`${config.dataset}: the ${config.splits.train} and ${config.splits.test} splits have different classes`);
  }
  return { train, test, loss: train.labelKind === 'multi-label' ? 'sigmoid-bce' : 'softmax-ce' };
}

/** Whether the run caches the linearised models' point: it trains one, and pointCache says so or ('auto') it pays. */
export function cachesPoint(config: RunConfig, model: LinearisedModel): boolean {
  if (!config.methods.some(isLinearised)) return false;
  return config.pointCache === 'on' || (config.pointCache === 'auto' && pointCachePays(model));
}

/** The training split's point for `model` (with the run's ablations), from its cache, filled first where needed. */
export async function preparePoint(
  config: RunConfig,
  prepared: PreparedModel,
  model: LinearisedModel,
  cut: FeatureCache,
  progress: Progress,
  runners?: ShardRunners,
): Promise<ExtractedPoint> {
  const cache = await fillFeatureCache(headCacheFill(config, prepared, model, cut, 'point'), {
    runner: runners?.('train', 'point'),
    onProgress: (p) => progress.update(`point ${config.splits.train}`, p.done, p.total, { shards: p.shards }),
  });
  return { data: pointOfCache(model, cache), cache };
}

/** The images a split's cache left out as unreadable (with skipBadImages), in dataset order. */
export function skippedImages(split: ExtractedSplit): readonly SkippedImage[] {
  return split.cache.manifest.shards.flatMap((shard) => shard.skipped);
}

export interface OpenedRun {
  readonly run: RunDirectory;
  /** The config as the run goes on with it, learning-rate changes of this resume recorded. */
  readonly config: RunConfig;
  /** The learning rates this resume changed. */
  readonly changes: readonly LearningRateChange[];
  /** Gives the run directory back to other processes. */
  release(): Promise<void>;
}

export interface OpenRunOptions {
  /** Names this process to a second one, which is refused while it runs. */
  readonly command: string;
  readonly resume: boolean;
  /** The learning rate was given on this command line (--lr): on --resume it may differ from the run's, and is recorded. */
  readonly learningRateGiven?: boolean;
}

/**
 * Opens (or, with `resume`, reopens) the run directory for this process alone. A resumed run must
 * have the same config, except for a learning rate given explicitly with --lr: it applies from each
 * method's checkpoint on, and the change is recorded in the config as `learningRateChanges`.
 */
export async function openRun(config: RunConfig, options: OpenRunOptions): Promise<OpenedRun> {
  // Refused before anything is written when there is no run to resume.
  if (options.resume) await RunDirectory.open(config.out);
  const lock = await lockDirectory(config.out, options.command);
  try {
    let changes: LearningRateChange[] = [];
    let recorded = config;
    if (options.resume && options.learningRateGiven) {
      const existing = await RunDirectory.open(config.out);
      const stored = await runConfigFromStored(existing.config, existing.path);
      changes = await learningRateChanges(stored, config, existing);
      const all = [...(stored.learningRateChanges ?? []), ...changes];
      recorded = { ...config, ...(all.length > 0 && { learningRateChanges: all }) };
    }
    const changed = new Set(changes.map((change) => `training.${change.method}.learningRate`));
    const run = await RunDirectory.create(config.out, storedRunConfig(recorded), {
      mayChange: (field) => field === 'learningRateChanges' || changed.has(field),
    });
    return { run, config: recorded, changes, release: () => lock.release() };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Each method whose learning rate `config` changes from the stored run's, from the step its checkpoint reached. */
async function learningRateChanges(stored: RunConfig, config: RunConfig, run: RunDirectory): Promise<LearningRateChange[]> {
  const at = new Date().toISOString();
  const changes: LearningRateChange[] = [];
  for (const method of METHODS) {
    const from = stored.training[method].learningRate;
    const to = config.training[method].learningRate;
    if (from !== to) changes.push({ method, fromStep: (await run.loadCheckpoint(method))?.step ?? 0, from, to, at });
  }
  return changes;
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
  run: RunDirectory,
  progress: Progress,
  resume: boolean,
  clock = new PhaseClock(),
  transport?: Transport,
): Promise<MethodResult[]> {
  const classes = splits.train.targets.shape[1];
  const model = withAblatedOmega(config, prepared.model, classes);
  let point: ExtractedPoint | undefined;
  if (cachesPoint(config, model)) {
    clock.start('point');
    point = await preparePoint(config, prepared, model, splits.train.cache, progress, transport?.runners);
  }
  // Workers train the linear probe on f(x) from the shared storage; a local run computes it in memory.
  const features = transport && (await trainFeatures(config, prepared, model, splits, progress, transport.runners));
  const configs = Object.fromEntries(METHODS.map((m) => [m, trainConfigFor(config, m)])) as Record<Method, TrainConfig>;
  // A checkpoint must hold exactly the parameters a fresh run of its method starts from.
  const expected = (method: Method) => initialParams(model, method, zeroClassifier(classes, model.featureCount));
  return compareMethods({
    backend: prepared.backend,
    model,
    loss: splits.loss,
    train: { ...splits.train, point: point?.data, features: features?.source },
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
  kind: HeadCacheKind,
): CacheFill {
  const options = {
    backend: prepared.backend,
    model,
    cut,
    // One point per head (a random θ2 or ω gives another); the features depend on the frozen head alone.
    cacheDir: join(
      cacheRoot(config),
      kind === 'point' ? pointCacheName(config.splits.train, model, cut) : `${config.splits.train}.features`,
    ),
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
  const config = await runConfigFromStored(run.config, run.path);
  const states = new Map<Method, TrainState>();
  for (const method of new Set<Method>(['activation', ...config.methods])) {
    const state = await run.loadCheckpoint(method);
    if (!state) throw new Error(`${run.path}: no checkpoint for '${method}'; train it first (gradfeat train --resume --out ${run.path})`);
    states.set(method, state);
  }
  return { run, config, states, omegaBar: classifierOf(states.get('activation') as TrainState) };
}
