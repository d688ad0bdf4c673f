/**
 * What the cluster transport costs and gives, on this machine (a benchmark, not a test):
 * 1. extraction images/s of experiment 1's trunk (MobileNet v1 0.25 to conv_pw_12_relu, 224×224) with
 *    1, 2 and 3 `gradfeat worker` processes on a local redis-server;
 * 2. the per-step overhead of the distributed gradient sum for experiment 1's θ2 (MobileNet block 13)
 *    and a ResNet-18 layer4 head, with 1, 2 and 3 workers: a step's wall time through the workers minus
 *    the compute of one part, measured with one sample per part so that the compute is small.
 *
 *   node --conditions=source --import tsx packages/cli/bench/cluster.ts [--images N] [--steps S] [--json]
 *
 * Needs /usr/bin/redis-server and ../shared (the MobileNet model). Prints a table and JSON.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createOnnxBackend } from '@gradfeat/backend-onnx';
import { initialParams, linearise, localGradientEvaluator, median, memorySource, normalTensor, oneHot, Rng } from '@gradfeat/core';
import { Coordinator } from '@gradfeat/distributed';
import { CLI, spawnWorker, startRedis, until, type WorkerProcess } from '../../../test-support/cluster.js';
import { sharedPath } from '../../../test-support/shared.js';
import { BENCH_HEADS, type BenchHead } from './cluster-heads.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '512' },
    steps: { type: 'string', default: '7' },
    json: { type: 'boolean', default: false },
  },
});
const IMAGES = Number(values.images);
const STEPS = Number(values.steps);
const WORKER_COUNTS = [1, 2, 3];
const cores = availableParallelism();
const work = mkdtempSync(join(tmpdir(), 'gradfeat-cluster-bench-'));
const redis = await startRedis();

/** Workers share the cores: each gets its share of ONNX Runtime threads. */
const workerEnv = (workers: number) => ({
  ...process.env,
  GRADFEAT_ONNX_THREADS: String(Math.max(1, Math.floor(cores / workers))),
  GRADFEAT_ONNX_SPINNING: '0',
});

async function startWorkers(count: number, args: readonly string[]): Promise<WorkerProcess[]> {
  const started = Array.from({ length: count }, () => spawnWorker(args, workerEnv(count)));
  await until(() => started.every((w) => w.events().some((e) => e.event === 'ready')), `${count} workers to start`, 120);
  return started;
}

function run(args: readonly string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...CLI, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`gradfeat ${args[0]} exited with ${code}`))));
  });
}

/** CIFAR-format records of random pixels, resized to the model's 224×224 by the pipeline. */
function writeDataset(directory: string): void {
  const record = 3073;
  const rng = new Rng(3);
  const bytes = Buffer.alloc(IMAGES * record);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % record === 0 ? rng.int(10) : rng.int(256);
  const boundary = (b: number) => Math.round((b * IMAGES) / 5) * record;
  for (let b = 1; b <= 5; b++) writeFileSync(join(directory, `data_batch_${b}.bin`), bytes.subarray(boundary(b - 1), boundary(b)));
  writeFileSync(join(directory, 'test_batch.bin'), Buffer.alloc(0));
}

async function extractionRates(): Promise<{ workers: number; imagesPerSecond: number }[]> {
  writeDataset(work);
  // 64 rows of conv_pw_12's [256, 7, 7] float32 values per shard: IMAGES / 64 jobs.
  const config = join(work, 'extract.yaml');
  writeFileSync(
    config,
    [
      `model: ${sharedPath('models', 'mobilenet_v1_0.25_224')}`,
      `dataset: cifar10:${work}`,
      'cut: conv_pw_12_relu',
      'backend: onnx',
      'splits: { train: train, test: train }',
      'extractBatchSize: 32',
      `shardBytes: ${64 * 256 * 7 * 7 * 4}`,
    ].join('\n'),
  );
  const rates = [];
  for (const count of WORKER_COUNTS) {
    const workers = await startWorkers(count, [...CLI, 'worker', '--redis', redis.url]);
    await run(['extract', '--config', config, '--out', join(work, `extract-${count}`), '--redis', redis.url]);
    // From the first job taken to the last finished: the workers' time, without the coordinator's start-up.
    const times = workers.flatMap((w) =>
      w
        .events()
        .filter((e) => e.job === 'cache-shard')
        .map((e) => Date.parse(e.time ?? '')),
    );
    rates.push({ workers: count, imagesPerSecond: IMAGES / ((Math.max(...times) - Math.min(...times)) / 1000) });
    for (const w of workers) w.kill();
  }
  return rates;
}

interface StepOverhead {
  readonly head: BenchHead;
  readonly workers: number;
  readonly parameterMiB: number;
  readonly stepMs: number;
  readonly partComputeMs: number;
  readonly overheadMs: number;
}

async function stepOverheads(): Promise<StepOverhead[]> {
  const backend = await createOnnxBackend({ intraOpNumThreads: 1 });
  const results: StepOverhead[] = [];
  for (const head of Object.keys(BENCH_HEADS) as BenchHead[]) {
    const model = linearise(BENCH_HEADS[head](0), { cut: 'input' });
    const omegaBar = model.sourceClassifier;
    const params = initialParams(model, 'full', omegaBar);
    const rng = new Rng(1);
    const classes = omegaBar.weight.shape[0];
    const rows = 3;
    const data = {
      inputs: memorySource(normalTensor(rng, [rows, ...model.cutShape])),
      targets: oneHot(
        [0, 1, 2].map((r) => r % classes),
        classes,
      ),
    };
    const request = { backend, model, omegaBar, loss: 'softmax-ce' as const, data, method: 'full' as const };
    // One sample's gradient sums in this process: the compute of one part.
    const local = await localGradientEvaluator(request);
    const partTimes: number[] = [];
    for (let i = 0; i < STEPS + 2; i++) {
      const started = performance.now();
      await local.sums(params, [0], 1);
      if (i >= 2) partTimes.push(performance.now() - started);
    }
    local.dispose();
    for (const count of WORKER_COUNTS) {
      const workers = await startWorkers(count, [
        '--conditions=source',
        '--import',
        'tsx',
        join(import.meta.dirname, 'cluster-worker.ts'),
        redis.url,
      ]);
      const coordinator = await Coordinator.connect({
        redis: redis.url,
        gradientJobs: count,
        context: {
          config: { head, rows },
          configFingerprint: `bench-${head}`,
          modelFingerprint: 'bench',
          run: `bench-${head}-${count}`,
          blobDirectory: join(work, 'blobs'),
        },
      });
      const remote = await coordinator.gradientEvaluator(() => ({ method: 'full' }))(request);
      const stepTimes: number[] = [];
      for (let i = 0; i < STEPS + 2; i++) {
        const started = performance.now();
        await remote.sums(
          params,
          Array.from({ length: count }, (_, r) => r),
          1,
        );
        if (i >= 2) stepTimes.push(performance.now() - started);
      }
      await remote.dispose();
      await coordinator.close();
      for (const w of workers) w.kill();
      const stepMs = median(stepTimes);
      const partComputeMs = median(partTimes);
      const bytes = [...params.values()].reduce((total, p) => total + p.data.byteLength, 0);
      results.push({ head, workers: count, parameterMiB: bytes / 2 ** 20, stepMs, partComputeMs, overheadMs: stepMs - partComputeMs });
    }
  }
  return results;
}

try {
  const extraction = await extractionRates();
  const steps = await stepOverheads();
  if (values.json) process.stdout.write(`${JSON.stringify({ cores, images: IMAGES, extraction, steps }, null, 2)}\n`);
  else {
    process.stdout.write(`extraction, ${IMAGES} images (MobileNet v1 0.25 to conv_pw_12_relu, 224×224), ${cores} cores:\n`);
    for (const r of extraction) process.stdout.write(`  ${r.workers} worker(s): ${r.imagesPerSecond.toFixed(1)} images/s\n`);
    process.stdout.write('distributed gradient sum ("full" method), per step, median of the timed steps:\n');
    for (const r of steps) {
      process.stdout.write(
        `  ${r.head.padEnd(18)} ${r.parameterMiB.toFixed(2).padStart(6)} MiB, ${r.workers} worker(s): step ${r.stepMs.toFixed(1)} ms, one part's compute ${r.partComputeMs.toFixed(1)} ms, overhead ${r.overheadMs.toFixed(1)} ms\n`,
      );
    }
  }
} finally {
  redis.stop();
  rmSync(work, { recursive: true, force: true });
}
