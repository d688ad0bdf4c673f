import { type Backend, inputShapesOf } from '../backend/backend.js';
import type { Graph } from '../ir/graph.js';
import { linearise } from '../methods/linearised-model.js';
import {
  BATCH_SCALE,
  forwardProgram,
  gradName,
  INPUT,
  initialParams,
  type Method,
  TARGETS,
  trainStepProgram,
} from '../methods/programs.js';
import { basicBlockNetwork, cifarResNet } from '../networks/resnet.js';
import { normalTensor, Rng } from '../random.js';
import { type HostTensor, oneHot } from '../tensor.js';
import { applyUpdate, type OptimiserState } from '../train/optimisers.js';

/**
 * The speed workloads gradfeat is compared with PyTorch on (random weights and inputs: they measure
 * speed only). Images per second of the median of several timed runs, after warm-up runs.
 */
export const BENCH_WORKLOADS = ['extract_r20', 'full_step_r20', 'finetune_step_r20', 'full_step_r18l4', 'finetune_step_r18l4'] as const;
/** One of `BENCH_WORKLOADS`. */
export type BenchWorkload = (typeof BENCH_WORKLOADS)[number];

/** PyTorch 1.13, 2 threads, functorch.jvp for the tangent, on this kind of 2-core machine. */
export const PYTORCH_IMAGES_PER_SECOND: Readonly<Record<BenchWorkload, number>> = {
  extract_r20: 1800,
  full_step_r20: 5600,
  finetune_step_r20: 10400,
  full_step_r18l4: 140,
  finetune_step_r18l4: 260,
};

/** One workload's measured speed. */
export interface BenchResult {
  readonly workload: BenchWorkload;
  readonly batch: number;
  readonly imagesPerSecond: number;
  readonly medianSeconds: number;
  readonly seconds: readonly number[];
}

/** How many runs `runBenchmark` times, and optional real weights. */
export interface BenchOptions {
  readonly runs?: number;
  readonly warmup?: number;
  /** ResNet-20 to take the trunk from (e.g. the imported ONNX file); a random one by default. */
  readonly resnet20?: Graph;
  readonly seed?: number;
}

/** Everything before ResNet-20's last residual block. */
export const RESNET20_LAST_BLOCK_INPUT = 'layer3.1';

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

async function prepareExtraction(backend: Backend, trunk: Graph, batch: number, rng: Rng, name: string): Promise<PreparedWorkload> {
  const input = normalTensor(rng, [batch, ...trunk.inputs[0].shape.slice(1)]);
  const compiled = await backend.compile(forwardProgram(trunk), inputShapesOf({ [INPUT]: input }, [INPUT]), { name });
  return { batch, step: async () => void (await compiled.run({ [INPUT]: input })), dispose: () => compiled.dispose() };
}

async function prepare(backend: Backend, workload: BenchWorkload, options: BenchOptions): Promise<PreparedWorkload> {
  const rng = new Rng(options.seed ?? 0);
  const resnet20 = () => options.resnet20 ?? cifarResNet({ blocksPerStage: 3, classes: 10, seed: options.seed ?? 0 });
  if (workload === 'extract_r20')
    return prepareExtraction(backend, linearise(resnet20(), { cut: RESNET20_LAST_BLOCK_INPUT }).trunk, 256, rng, workload);
  const method: Method = workload.startsWith('full') ? 'full' : 'finetune';
  const r18 = workload.endsWith('r18l4');
  const network = r18 ? basicBlockNetwork({ channels: 512, size: 7, classes: 20, seed: options.seed ?? 0 }) : resnet20();
  const model = linearise(network, { cut: r18 ? 'input' : RESNET20_LAST_BLOCK_INPUT });
  const batch = r18 ? 64 : 128;
  const omegaBar = model.sourceClassifier;
  const params = initialParams(model, method, omegaBar);
  const feed: Record<string, HostTensor> = {
    [INPUT]: normalTensor(rng, [batch, ...model.cutShape]),
    [TARGETS]: oneHot(
      Array.from({ length: batch }, () => rng.int(omegaBar.weight.shape[0])),
      omegaBar.weight.shape[0],
    ),
    [BATCH_SCALE]: { shape: [1], data: Float32Array.of(1 / batch) },
    ...Object.fromEntries(params),
  };
  const compiled = await backend.compile(trainStepProgram(model, method, omegaBar, 'softmax-ce'), inputShapesOf(feed, [INPUT, TARGETS]), {
    name: workload,
  });
  const state: OptimiserState = {};
  let step = 0;
  return {
    batch,
    async step() {
      const outputs = await compiled.run(feed);
      const grads = new Map([...params.keys()].map((name) => [name, outputs[gradName(name)].data]));
      applyUpdate({ kind: 'sgd', learningRate: 1e-3, momentum: 0.9 }, params, grads, state, 1e-3, ++step);
    },
    dispose: () => compiled.dispose(),
  };
}

/** Warm-up runs, then the median of timed runs of `prepared.step`. */
async function timeSteps(prepared: PreparedWorkload, options: BenchOptions): Promise<{ medianSeconds: number; seconds: number[] }> {
  try {
    for (let i = 0; i < (options.warmup ?? 2); i++) await prepared.step();
    const seconds: number[] = [];
    for (let i = 0; i < (options.runs ?? 7); i++) {
      const started = performance.now();
      await prepared.step();
      seconds.push((performance.now() - started) / 1000);
    }
    return { medianSeconds: median(seconds), seconds };
  } finally {
    prepared.dispose();
  }
}

/** Times one workload on a backend: warm-up runs, then the median of timed runs. */
export async function runBenchmark(backend: Backend, workload: BenchWorkload, options: BenchOptions = {}): Promise<BenchResult> {
  const prepared = await prepare(backend, workload, options);
  const { medianSeconds, seconds } = await timeSteps(prepared, options);
  return { workload, batch: prepared.batch, imagesPerSecond: prepared.batch / medianSeconds, medianSeconds, seconds };
}

/** Images per second of any trunk (e.g. an imported MobileNet cut at a block) on random inputs. */
export async function benchmarkExtraction(
  backend: Backend,
  trunk: Graph,
  batch: number,
  options: BenchOptions = {},
): Promise<{ batch: number; imagesPerSecond: number; medianSeconds: number; seconds: readonly number[] }> {
  const prepared = await prepareExtraction(backend, trunk, batch, new Rng(options.seed ?? 0), 'extraction');
  const { medianSeconds, seconds } = await timeSteps(prepared, options);
  return { batch, imagesPerSecond: batch / medianSeconds, medianSeconds, seconds };
}
