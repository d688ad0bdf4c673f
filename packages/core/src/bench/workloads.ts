import { type Backend, INPUT, runProgramOnce } from '../backend/backend.js';
import { compileBatchProgram } from '../backend/batch-program.js';
import type { Graph } from '../ir/graph.js';
import { linearise } from '../methods/linearised-model.js';
import {
  forwardProgram,
  initialParams,
  isLinearised,
  linearisationPointProgram,
  type Method,
  pointOfOutputs,
  stepBatchInputs,
  stepFixedInputs,
  stepOutputBuffers,
  trainStepProgram,
} from '../methods/programs.js';
import { mobileNetV1, separableBlockNetwork } from '../networks/mobilenet.js';
import { basicBlockNetwork, cifarResNet } from '../networks/resnet.js';
import { normalTensor, Rng } from '../random.js';
import { type HostTensor, hostTensor, oneHot } from '../tensor.js';
import { applyUpdate, type OptimiserConfig, type OptimiserState } from '../train/optimisers.js';

/**
 * The speed workloads gradfeat is compared with PyTorch on, with the names, shapes and optimisers of
 * `bench/bench_torch.py` in the project's reference data (random weights and inputs: they measure
 * speed only). Images per second of the median of several timed runs, after warm-up runs. PyTorch's
 * figures depend on the machine, so they are measured beside these in the same run, never stored.
 */
export const BENCH_WORKLOADS = [
  'extract_r20',
  'full_step_r20',
  'gradient_step_r20',
  'finetune_step_r20',
  'full_step_r18l4',
  'gradient_step_r18l4',
  'finetune_step_r18l4',
  'extract_mb',
  'gradient_step_mb13',
  'full_step_mb13',
  'finetune_step_mb13',
] as const;
/** One of `BENCH_WORKLOADS`. */
export type BenchWorkload = (typeof BENCH_WORKLOADS)[number];

/** The workloads of `benchmarkNetwork`: any network's extraction and training steps at one cut. */
export const NETWORK_WORKLOADS = ['extract', 'gradient_step', 'full_step', 'finetune_step'] as const;
/** One of `NETWORK_WORKLOADS`. */
export type NetworkWorkload = (typeof NETWORK_WORKLOADS)[number];

/** One workload's measured speed. */
export interface BenchResult {
  readonly workload: string;
  readonly batch: number;
  readonly imagesPerSecond: number;
  readonly medianSeconds: number;
  readonly seconds: readonly number[];
  /** The process's peak resident memory once the workload has run (it includes earlier workloads'); NaN in a browser. */
  readonly peakRssBytes: number;
}

/** How many runs `runBenchmark` times, and optional real weights. */
export interface BenchOptions {
  readonly runs?: number;
  readonly warmup?: number;
  readonly seed?: number;
}

/** Everything before ResNet-20's last residual block. */
export const RESNET20_LAST_BLOCK_INPUT = 'layer3.1';
/** MobileNet v1's trunk up to its last depthwise-separable block (block 13 is θ2). */
export const MOBILENET_LAST_BLOCK_INPUT = 'conv_pw_12_relu';

/** SGD as bench_torch.py's ResNet steps train; Adam with the paper's β for MobileNet's block 13. */
const SGD: OptimiserConfig = { kind: 'sgd', learningRate: 0.01, momentum: 0.9 };
const PAPER_ADAM: OptimiserConfig = { kind: 'adam', learningRate: 1e-3, beta1: 0.5, beta2: 0.999, weightDecay: 1e-6 };

type WorkloadSpec =
  | { readonly kind: 'extract'; readonly network: (seed: number) => Graph; readonly cut: string; readonly batch: number }
  | {
      readonly kind: 'step';
      readonly network: (seed: number) => Graph;
      readonly cut: string;
      readonly batch: number;
      readonly method: Exclude<Method, 'activation'>;
      readonly optimiser: OptimiserConfig;
    };

const resnet20 = (seed: number) => cifarResNet({ blocksPerStage: 3, classes: 10, seed });
/** A ResNet-18 layer4 block with its classifier (512 channels, 7×7), random weights. */
export const resnet18Layer4 = (seed: number) => basicBlockNetwork({ channels: 512, size: 7, classes: 20, seed });
const mobileNet = (seed: number) => mobileNetV1({ alpha: 0.25, classes: 1000, seed });
/** Experiment 1's θ2: MobileNet v1 0.25's block 13 (256 channels, 7×7) with a classifier, random weights. */
export const mobileNetBlock13 = (seed: number) => separableBlockNetwork({ channels: 256, size: 7, classes: 10, seed });

function stepSpec(
  network: (seed: number) => Graph,
  cut: string,
  batch: number,
  method: Exclude<Method, 'activation'>,
  optimiser: OptimiserConfig,
): WorkloadSpec {
  return { kind: 'step', network, cut, batch, method, optimiser };
}

const WORKLOADS: Readonly<Record<BenchWorkload, WorkloadSpec>> = {
  extract_r20: { kind: 'extract', network: resnet20, cut: RESNET20_LAST_BLOCK_INPUT, batch: 256 },
  full_step_r20: stepSpec(resnet20, RESNET20_LAST_BLOCK_INPUT, 128, 'full', SGD),
  gradient_step_r20: stepSpec(resnet20, RESNET20_LAST_BLOCK_INPUT, 128, 'gradient', SGD),
  finetune_step_r20: stepSpec(resnet20, RESNET20_LAST_BLOCK_INPUT, 128, 'finetune', SGD),
  full_step_r18l4: stepSpec(resnet18Layer4, 'input', 64, 'full', SGD),
  gradient_step_r18l4: stepSpec(resnet18Layer4, 'input', 64, 'gradient', SGD),
  finetune_step_r18l4: stepSpec(resnet18Layer4, 'input', 64, 'finetune', SGD),
  extract_mb: { kind: 'extract', network: mobileNet, cut: MOBILENET_LAST_BLOCK_INPUT, batch: 32 },
  gradient_step_mb13: stepSpec(mobileNetBlock13, 'input', 64, 'gradient', PAPER_ADAM),
  full_step_mb13: stepSpec(mobileNetBlock13, 'input', 64, 'full', PAPER_ADAM),
  finetune_step_mb13: stepSpec(mobileNetBlock13, 'input', 64, 'finetune', PAPER_ADAM),
};

/** The middle value (mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** A timed step: compile once, then `step()` runs one batch. */
interface PreparedWorkload {
  readonly batch: number;
  step(): Promise<void>;
  dispose(): void;
}

async function prepare(backend: Backend, spec: WorkloadSpec, name: string, seed: number): Promise<PreparedWorkload> {
  const rng = new Rng(seed);
  const model = linearise(spec.network(seed), { cut: spec.cut });
  if (spec.kind === 'extract') {
    const input = normalTensor(rng, [spec.batch, ...model.trunk.inputs[0].shape.slice(1)]);
    const compiled = await compileBatchProgram(backend, forwardProgram(model.trunk), { name });
    return { batch: spec.batch, step: async () => void (await compiled.run({ [INPUT]: input })), dispose: () => compiled.dispose() };
  }
  const omegaBar = model.sourceClassifier;
  const classes = omegaBar.weight.shape[0];
  const params = initialParams(model, spec.method, omegaBar);
  const cut = normalTensor(rng, [spec.batch, ...model.cutShape]);
  // The linearised models train at a cached point, as trainMethod runs them: computed once here.
  const cachedPoint = isLinearised(spec.method);
  const point = cachedPoint
    ? pointOfOutputs(model, await runProgramOnce(backend, linearisationPointProgram(model), { [INPUT]: cut }, `${name}: point`))
    : undefined;
  const batch = stepBatchInputs<HostTensor>(spec.method, {
    samples: cut,
    targets: oneHot(
      Array.from({ length: spec.batch }, () => rng.int(classes)),
      classes,
    ),
    point,
  });
  const fixed = stepFixedInputs(hostTensor([1], [1 / spec.batch]), params);
  const compiled = await compileBatchProgram(backend, trainStepProgram(model, spec.method, omegaBar, 'softmax-ce', { cachedPoint }), {
    name,
  });
  const feed = { ...batch, ...fixed };
  const { into, gradients: grads } = stepOutputBuffers(params);
  const state: OptimiserState = {};
  let step = 0;
  return {
    batch: spec.batch,
    async step() {
      await compiled.run(feed, { into, only: Object.keys(into) });
      applyUpdate(spec.optimiser, params, grads, state, spec.optimiser.learningRate, ++step);
    },
    dispose: () => compiled.dispose(),
  };
}

/** Warm-up runs, then the median of timed runs of `prepared.step`. */
async function timeSteps(prepared: PreparedWorkload, workload: string, options: BenchOptions): Promise<BenchResult> {
  try {
    for (let i = 0; i < (options.warmup ?? 2); i++) await prepared.step();
    const seconds: number[] = [];
    for (let i = 0; i < (options.runs ?? 7); i++) {
      const started = performance.now();
      await prepared.step();
      seconds.push((performance.now() - started) / 1000);
    }
    const medianSeconds = median(seconds);
    return {
      workload,
      batch: prepared.batch,
      imagesPerSecond: prepared.batch / medianSeconds,
      medianSeconds,
      seconds,
      peakRssBytes: typeof process === 'undefined' ? Number.NaN : process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    prepared.dispose();
  }
}

/** One of the workloads bench_torch.py also measures: warm-up runs, then the median of timed runs. */
export async function runBenchmark(backend: Backend, workload: BenchWorkload, options: BenchOptions = {}): Promise<BenchResult> {
  const prepared = await prepare(backend, WORKLOADS[workload], workload, options.seed ?? 0);
  return timeSteps(prepared, workload, options);
}

/**
 * Extraction (the trunk up to `cut`) or a training step of the head after it, on any network with
 * its own weights and random inputs.
 */
export async function benchmarkNetwork(
  backend: Backend,
  network: Graph,
  cut: string,
  workload: NetworkWorkload,
  batch: number,
  options: BenchOptions = {},
): Promise<BenchResult> {
  const spec: WorkloadSpec =
    workload === 'extract'
      ? { kind: 'extract', network: () => network, cut, batch }
      : stepSpec(() => network, cut, batch, workload.replace('_step', '') as Exclude<Method, 'activation'>, PAPER_ADAM);
  const prepared = await prepare(backend, spec, workload, options.seed ?? 0);
  return timeSteps(prepared, workload, options);
}
