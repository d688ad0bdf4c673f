import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrainState, type Method, relativeError, type TrainState } from '@gradfeat/core';
import { GRADFEAT_VERSION, GRADIENT_JOB, QUEUE, SHARD_JOB } from '@gradfeat/distributed';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI, type LocalRedis, spawnWorker, startRedis, until, type WorkerProcess } from '../../../test-support/cluster.js';
import { describeWithShared } from '../../../test-support/shared.js';
import { resnet20RunConfig, runCli, runCliKilledAt } from './run-cli.js';

/**
 * A coordinator and three `gradfeat worker` processes on a real redis-server (Debian's package, on a
 * free loopback port), on a generated CIFAR-format dataset and the shared ResNet-20: extraction with a
 * worker killed mid-job, training equal to a local run with Adam and with L-BFGS, and a coordinator
 * killed mid-training and resumed.
 */
// One ONNX Runtime thread per process: four processes share the machine's cores.
const ENV = { ...process.env, GRADFEAT_ONNX_THREADS: '1', GRADFEAT_ONNX_SPINNING: '0' };
const RECORD = 3073;
/** 576 training images in 3 shards of 192, the test split in one: each shard job runs long enough to be killed in. */
const TRAIN_IMAGES = 576;
const TEST_IMAGES = 128;

let work = '';
let redis: LocalRedis | undefined;
let url = '';
const workers: WorkerProcess[] = [];

/** Images whose class is visible in their colours, so that training has something to learn. */
function cifarRecords(count: number, seed: number): Buffer {
  const bytes = Buffer.alloc(count * RECORD);
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  for (let r = 0; r < count; r++) {
    const label = Math.floor(next() * 10);
    bytes[r * RECORD] = label;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) bytes[r * RECORD + 1 + c * 1024 + p] = Math.floor(((label + c * 3) % 10) * 20 + next() * 60);
    }
  }
  return bytes;
}

function startWorker(): WorkerProcess {
  const worker = spawnWorker([...CLI, 'worker', '--redis', url, '--stall-timeout', '2'], ENV);
  workers.push(worker);
  return worker;
}

function runArgs(name: string, ...extra: string[]): string[] {
  return ['--config', join(work, 'run.yaml'), '--out', join(work, name), '--cache-dir', join(work, `${name}-cache`), ...extra];
}

const paramsOf = (state: TrainState) => Float32Array.from([...state.params.values()].flatMap((t) => [...t.data]));
const checkpoint = (run: string, method: Method) => loadTrainState(join(work, run, 'checkpoints', method), method);

describeWithShared('gradfeat on a cluster: a coordinator and three workers on a real Redis', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'gradfeat-cluster-'));
    const train = cifarRecords(TRAIN_IMAGES, 1);
    for (let b = 1; b <= 5; b++) {
      const per = TRAIN_IMAGES / 5;
      writeFileSync(join(work, `data_batch_${b}.bin`), train.subarray(Math.round((b - 1) * per) * RECORD, Math.round(b * per) * RECORD));
    }
    writeFileSync(join(work, 'test_batch.bin'), cifarRecords(TEST_IMAGES, 2));
    writeFileSync(
      join(work, 'run.yaml'),
      resnet20RunConfig(work, [
        'backend: onnx',
        'extractBatchSize: 16',
        // 192 rows of 64×8×8 float32 values per shard.
        `shardBytes: ${192 * 64 * 8 * 8 * 4}`,
        'checkpointEvery: 3',
        'seed: 5',
        'workers: 0',
        'training: { all: { epochs: 2, batchSize: 48, learningRate: 0.003 } }',
        // Every run sums each step's gradient from three parts: one job per worker with --redis.
        'gradientParts: 3',
      ]),
    );
    redis = await startRedis();
    url = redis.url;
    for (let i = 0; i < 3; i++) startWorker();
    await until(() => workers.every((worker) => worker.events().some((e) => e.event === 'ready')), 'three workers to start');
  });

  afterAll(async () => {
    for (const worker of workers) worker.kill();
    redis?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('extraction with a worker killed mid-job completes with the cache of a local run, shard for shard', async () => {
    const local = await runCli(['extract', ...runArgs('local')], { env: ENV });
    expect(local.code, local.stderr).toBe(0);

    const coordinator = runCli(['extract', ...runArgs('cluster'), '--redis', url], { env: ENV });
    const startedShard = (worker: WorkerProcess) => worker.events().find((e) => e.event === 'started' && e.job === SHARD_JOB);
    await until(() => workers.some(startedShard), 'a worker to start a shard job');
    const victim = workers.find(startedShard) as WorkerProcess;
    victim.kill();
    const killed = startedShard(victim)?.id;
    workers.splice(workers.indexOf(victim), 1);
    startWorker();
    const result = await coordinator;
    expect(result.code, result.stderr).toBe(0);
    // The killed worker never finished its job: another took it over once its lock expired.
    expect(victim.events().some((e) => e.event === 'completed' && e.id === killed)).toBe(false);
    expect(workers.some((worker) => worker.events().some((e) => e.event === 'completed' && e.id === killed))).toBe(true);

    for (const split of ['train', 'test']) {
      const manifest = (run: string) => JSON.parse(readFileSync(join(work, `${run}-cache`, split, 'manifest.json'), 'utf8'));
      const expected = manifest('local');
      expect(expected.shards.length).toBe(split === 'train' ? 3 : 1);
      expect(manifest('cluster')).toEqual(expected);
      for (const shard of expected.shards) {
        expect(
          readFileSync(join(work, 'cluster-cache', split, shard.file)).equals(readFileSync(join(work, 'local-cache', split, shard.file))),
        ).toBe(true);
      }
    }
    // Extracting again finds the cache complete: no job is sent.
    const shardJobs = () => workers.flatMap((worker) => worker.events().filter((e) => e.event === 'started' && e.job === SHARD_JOB));
    const before = shardJobs().length;
    const again = await runCli(['extract', ...runArgs('cluster'), '--redis', url, '--json'], { env: ENV });
    expect(again.code, again.stderr).toBe(0);
    // Train, test and the linearised models' point (cached by the first run: this head pays for it).
    expect(JSON.parse(again.stdout).splits.map((s: { split: string; images: number }) => [s.split, s.images])).toEqual([
      ['train', TRAIN_IMAGES],
      ['test', TEST_IMAGES],
      ['train (point)', TRAIN_IMAGES],
    ]);
    expect(shardJobs().length).toBe(before);
  });

  it('Adam on the workers (three gradient jobs per step) reaches the parameters of a local run with the same settings, all four methods', async () => {
    const local = await runCli(['compare', ...runArgs('local'), '--json'], { env: ENV });
    expect(local.code, local.stderr).toBe(0);
    const cluster = await runCli(['compare', ...runArgs('cluster'), '--redis', url, '--json'], { env: ENV });
    expect(cluster.code, cluster.stderr).toBe(0);
    for (const method of ['activation', 'gradient', 'full', 'finetune'] as const) {
      const [ours, theirs] = [await checkpoint('cluster', method), await checkpoint('local', method)];
      expect(ours.step).toBe(24);
      expect(relativeError(paramsOf(ours), paramsOf(theirs)).relative, method).toBeLessThan(1e-5);
    }
  });

  it('L-BFGS on the workers (full-batch sums) reaches the parameters of a local L-BFGS run', async () => {
    const args = ['--methods', 'activation', 'gradient', 'full', '--optimiser', 'lbfgs', '--epochs', '12', '--json'];
    const local = await runCli(['compare', ...runArgs('local-lbfgs'), '--cache-dir', join(work, 'local-cache'), ...args], { env: ENV });
    expect(local.code, local.stderr).toBe(0);
    const cluster = await runCli(
      ['compare', ...runArgs('cluster-lbfgs'), '--cache-dir', join(work, 'cluster-cache'), '--redis', url, ...args],
      { env: ENV },
    );
    expect(cluster.code, cluster.stderr).toBe(0);
    for (const method of ['activation', 'gradient', 'full'] as const) {
      const [ours, theirs] = [await checkpoint('cluster-lbfgs', method), await checkpoint('local-lbfgs', method)];
      expect(ours.step, method).toBe(theirs.step);
      expect(ours.step, method).toBeGreaterThan(3);
      expect(relativeError(paramsOf(ours), paramsOf(theirs)).relative, method).toBeLessThan(1e-5);
    }
  });

  it('a coordinator killed mid-training and restarted with --resume ends with the result of an uninterrupted run', async () => {
    const args = (name: string) => ['train', '--method', 'full', ...runArgs(name), '--cache-dir', join(work, 'cluster-cache')];
    const straight = await runCli([...args('straight'), '--redis', url], { env: ENV });
    expect(straight.code, straight.stderr).toBe(0);
    const out = join(work, 'killed');
    await runCliKilledAt([...args('killed'), '--redis', url], join(out, 'checkpoints', 'full', 'checkpoint.json'), { env: ENV });
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    const interrupted = await checkpoint('killed', 'full');
    expect(interrupted.step).toBeLessThan(24);
    const resumed = await runCli([...args('killed'), '--redis', url, '--resume'], { env: ENV });
    expect(resumed.code, resumed.stderr).toBe(0);
    const [ours, theirs] = [await checkpoint('killed', 'full'), await checkpoint('straight', 'full')];
    expect(ours.step).toBe(24);
    expect(paramsOf(ours)).toEqual(paramsOf(theirs));
    const metrics = (run: string) => JSON.parse(readFileSync(join(work, run, 'metrics.json'), 'utf8')).methods;
    expect(metrics('killed')).toEqual(
      metrics('straight').map((m: Record<string, unknown>) => ({ ...m, trainSeconds: expect.any(Number) })),
    );
  });

  it('a worker refuses jobs from another gradfeat version, or for a model its files do not give, with the reason', async () => {
    const connection = new Redis(url, { maxRetriesPerRequest: null });
    const eventsConnection = new Redis(url, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE, { connection });
    const queueEvents = new QueueEvents(QUEUE, { connection: eventsConnection });
    await queueEvents.waitUntilReady();
    try {
      const config = JSON.parse(readFileSync(join(work, 'straight', 'config.json'), 'utf8'));
      const context = { config, configFingerprint: 'test', session: 'test', run: 'test', blobDirectory: work };
      const fill = { role: 'train', kind: 'cut' };
      const refused = async (name: string, data: unknown) => {
        const job = await queue.add(name, data, { attempts: 1 });
        return job.waitUntilFinished(queueEvents).then(
          () => 'completed',
          (error: Error) => error.message,
        );
      };
      expect(await refused(SHARD_JOB, { context: { ...context, version: '0.0.1', modelFingerprint: 'x' }, fill, index: 0 })).toMatch(
        `runs gradfeat ${GRADFEAT_VERSION} but the coordinator runs 0.0.1; run the same gradfeat version on every machine`,
      );
      expect(
        await refused(GRADIENT_JOB, { context: { ...context, version: GRADFEAT_VERSION, modelFingerprint: 'f00d' }, training: {} }),
      ).toMatch(
        /the model prepared from .*resnet20\.onnx \(cut layer3\.1\) differs from the coordinator's \(fingerprint [0-9a-f]{12} here, f00d there\)/,
      );
    } finally {
      await queueEvents.close();
      await queue.close();
      connection.disconnect();
      eventsConnection.disconnect();
    }
  });
});
