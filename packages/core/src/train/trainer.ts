import { type Backend, INPUT } from '../backend/backend.js';
import { compileBatchProgram, readRows } from '../backend/batch-program.js';
import { memorySource, type SampleSource } from '../data/source.js';
import type { Classifier, LinearisedModel } from '../methods/linearised-model.js';
import {
  initialParams,
  isLinearised,
  LOSS,
  type Method,
  pointResiduals,
  stepBatchInputs,
  stepFixedInputs,
  stepOutputBuffers,
  trainStepProgram,
} from '../methods/programs.js';
import { Rng } from '../random.js';
import { type HostTensor, hostTensor } from '../tensor.js';
import { DivergenceMonitor } from './divergence.js';
import { type GradientEvaluatorFactory, localGradientEvaluator } from './gradient-sums.js';
import { trainLbfgs } from './lbfgs.js';
import type { LossKind } from './losses.js';
import {
  applyUpdate,
  clipGradientNorm,
  learningRateAt,
  type OptimiserConfig,
  type OptimiserState,
  type ScheduleConfig,
} from './optimisers.js';

/**
 * The linearised models' point per sample (see linearisationPointProgram): the frozen features and the
 * residuals their tangent and backward passes read, so that no step evaluates the frozen head.
 */
export interface PointData {
  readonly features: SampleSource;
  /** By residual name (pointResiduals). */
  readonly residuals: Readonly<Record<string, SampleSource>>;
}

/** What a method trains on. */
export interface TrainingData {
  /** Features f(x) for the activation method, cut values for the others. */
  readonly inputs: SampleSource;
  /** For 'gradient' and 'full': their cached point; without it every step evaluates the frozen head. */
  readonly point?: PointData;
  /** Shape [N, K]: one-hot for softmax-ce, 0/1 for sigmoid-bce. */
  readonly targets: HostTensor;
  /** Shape [N, K], sigmoid-bce only: 0 where an entry is ignored (VOC "difficult"). */
  readonly mask?: HostTensor;
}

/** One method's training settings. */
export interface TrainConfig {
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimiser: OptimiserConfig;
  readonly schedule?: ScheduleConfig;
  /** Clip the global gradient norm to this value. */
  readonly clipNorm?: number;
  readonly seed: number;
  /**
   * Each step's gradient as the sum of this many parts of the batch (default 1: the batch in one
   * pass), e.g. one per worker; for L-BFGS, the jobs an evaluation is split into. The same number gives
   * the same numbers bit for bit, in this process or on workers.
   */
  readonly gradientParts?: number;
}

/** The loss of one training step. */
export interface StepRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainState {
  readonly method: Method;
  step: number;
  epoch: number;
  /** Next batch within the current epoch. */
  batchInEpoch: number;
  /** Generator state at the start of the current epoch (its permutation is redrawn from it). */
  epochRng: number[];
  params: Map<string, HostTensor>;
  optimiser: OptimiserState;
  history: StepRecord[];
  /** Training time so far, over every resumed part of the run. */
  seconds: number;
}

/** Progress after a training step. */
export interface StepInfo extends StepRecord {
  readonly totalSteps: number;
  readonly learningRate: number;
}

/** Callbacks and checkpointing of a training run. */
export interface TrainHooks {
  /** Called after every step. */
  readonly onStep?: (info: StepInfo) => void;
  /** Called every `checkpointEvery` steps and at the end, with the state to persist. */
  readonly checkpoint?: (state: TrainState) => Promise<void>;
  readonly checkpointEvery?: number;
  /**
   * Where the steps' gradients are computed: in this process by default, or elsewhere (e.g. by workers
   * on other machines) as sums over parts of each batch, reduced in a fixed order.
   */
  readonly evaluator?: GradientEvaluatorFactory;
}

/** A method's training state before its first step. */
export function initialTrainState(model: LinearisedModel, method: Method, omegaBar: Classifier, seed: number): TrainState {
  return {
    method,
    step: 0,
    epoch: 0,
    batchInEpoch: 0,
    epochRng: new Rng(seed).snapshot(),
    params: initialParams(model, method, omegaBar),
    optimiser: {},
    history: [],
    seconds: 0,
  };
}

/**
 * Trains one method with minibatches, the step program compiled once on `backend`. Resumes from
 * `state` (a fresh `initialTrainState` or a checkpoint) and gives the same numbers either way.
 */
export async function trainMethod(
  backend: Backend,
  model: LinearisedModel,
  omegaBar: Classifier,
  loss: LossKind,
  data: TrainingData,
  config: TrainConfig,
  state: TrainState,
  hooks: TrainHooks = {},
): Promise<TrainState> {
  const count = data.inputs.count;
  if (config.optimiser.kind === 'lbfgs') {
    const evaluator = await (hooks.evaluator ?? localGradientEvaluator)({ backend, model, omegaBar, loss, data, method: state.method });
    try {
      return await trainLbfgs(evaluator, count, config, state, hooks);
    } finally {
      await evaluator.dispose();
    }
  }
  const parts = config.gradientParts ?? 1;
  const request = { backend, model, omegaBar, loss, data, method: state.method };
  const evaluator = hooks.evaluator || parts > 1 ? await (hooks.evaluator ?? localGradientEvaluator)(request) : undefined;
  const step = evaluator ? undefined : await compileStep(backend, model, state.method, omegaBar, loss, data);
  // The step writes its loss and gradients into the same buffers every time.
  const { into, gradients: grads } = stepOutputBuffers(state.params);
  const batchesPerEpoch = Math.ceil(count / config.batchSize);
  const totalSteps = batchesPerEpoch * config.epochs;
  let clock = performance.now();
  const tick = () => {
    const now = performance.now();
    state.seconds += (now - clock) / 1000;
    clock = now;
  };
  const divergence = new DivergenceMonitor(state.method, totalSteps, state.history);
  try {
    while (state.epoch < config.epochs) {
      const order = new Rng(state.epochRng).permutation(count);
      while (state.batchInEpoch < batchesPerEpoch) {
        const indices = order.slice(state.batchInEpoch * config.batchSize, (state.batchInEpoch + 1) * config.batchSize);
        let batchLoss: number;
        if (evaluator) {
          // Synchronous data parallelism: the batch's gradient sums from its parts, then the mean.
          const sums = await evaluator.sums(state.params, indices, Math.ceil(indices.length / parts));
          for (const [name, grad] of grads) grad.set(meanOf(sums.grads.get(name), indices.length, name));
          batchLoss = sums.loss / indices.length;
        } else {
          batchLoss = await (step as CompiledStep).run(indices, state.params, 1 / indices.length, into);
        }
        if (config.clipNorm !== undefined) clipGradientNorm(grads, config.clipNorm);
        const learningRate = learningRateAt(config.optimiser, config.schedule, state.step);
        state.step += 1;
        applyUpdate(config.optimiser, state.params, grads, state.optimiser, learningRate, state.step);
        state.batchInEpoch += 1;
        const record = { step: state.step, epoch: state.epoch, loss: batchLoss };
        divergence.observe(record.step, record.loss, grads);
        state.history.push(record);
        hooks.onStep?.({ ...record, totalSteps, learningRate });
        if (hooks.checkpoint && hooks.checkpointEvery && state.step % hooks.checkpointEvery === 0 && divergence.healthy) {
          tick();
          await hooks.checkpoint(state);
          divergence.checkpointed(state.step);
        }
      }
      const next = new Rng(state.epochRng);
      next.permutation(count);
      state.epochRng = next.snapshot();
      state.epoch += 1;
      state.batchInEpoch = 0;
    }
    divergence.finish();
    tick();
    await hooks.checkpoint?.(state);
    return state;
  } finally {
    step?.dispose();
    await evaluator?.dispose();
  }
}

function meanOf(sum: Float64Array | undefined, count: number, name: string): Float64Array {
  if (!sum) throw new Error(`no gradient was computed for trainable parameter '${name}'`);
  return sum.map((value) => value / count);
}

/** A method's training step compiled for a data set: reads a batch's inputs by row and runs it. */
export interface CompiledStep {
  /** Runs the step on `rows` with `batchScale` (1/rows for the mean, 1 for sums); returns the loss, gradients in `into`. */
  run(
    rows: readonly number[],
    params: ReadonlyMap<string, HostTensor>,
    batchScale: number,
    into: Record<string, HostTensor>,
  ): Promise<number>;
  /** Frees the compiled program. */
  dispose(): void;
}

/** Compiles a method's step program once for `data` (with its cached point, where given). */
export async function compileStep(
  backend: Backend,
  model: LinearisedModel,
  method: Method,
  omegaBar: Classifier,
  loss: LossKind,
  data: TrainingData,
): Promise<CompiledStep> {
  const count = data.inputs.count;
  if (data.targets.shape[0] !== count) throw new Error(`${data.targets.shape[0]} targets for ${count} training samples`);
  const point = isLinearised(method) ? data.point : undefined;
  const program = trainStepProgram(model, method, omegaBar, loss, { cachedPoint: point !== undefined, masked: data.mask !== undefined });
  const expected = program.inputs[INPUT].slice(1);
  if (data.inputs.sampleShape.join(',') !== expected.join(',')) {
    throw new Error(
      `method '${method}' needs samples of shape [${expected.join(', ')}], the data has [${data.inputs.sampleShape.join(', ')}]`,
    );
  }
  const residuals = (cached: PointData) =>
    Object.fromEntries(
      [...pointResiduals(model).keys()].map((name) => {
        const source = cached.residuals[name];
        if (!source) throw new Error(`the cached point has no residual '${name}'; extract it again for this network and cut`);
        return [name, source];
      }),
    );
  const sources = stepBatchInputs<SampleSource>(method, {
    samples: data.inputs,
    targets: memorySource(data.targets),
    mask: data.mask && memorySource(data.mask),
    point: point && { features: point.features, residuals: residuals(point) },
  });
  const compiled = await compileBatchProgram(backend, program, { name: `${method} training step` });
  // One input buffer per source and batch size, refilled every step (the run has finished with it).
  const buffers = new Map<string, Float32Array>();
  return {
    async run(rows, values, batchScale, into) {
      const feed: Record<string, HostTensor> = {
        ...(await readRows(sources, rows, buffers)),
        ...stepFixedInputs(hostTensor([1], [batchScale]), values),
      };
      const outputs = await compiled.run(feed, { into, only: Object.keys(into) });
      return outputs[LOSS].data[0];
    },
    dispose: () => compiled.dispose(),
  };
}
