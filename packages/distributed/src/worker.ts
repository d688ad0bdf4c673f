import { hostname } from 'node:os';
import { type Classifier, type EvaluatorRequest, type GradientEvaluator, type HostTensor, localGradientEvaluator } from '@gradfeat/core';
import { type CacheFill, type OpenShardWriter, writeShardOf } from '@gradfeat/datasets';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { type BlobRef, BlobStore, packTensors, unpackTensors } from './blobs.js';
import { unpackClassifier } from './coordinator.js';
import {
  decodeRows,
  GRADFEAT_VERSION,
  GRADIENT_JOB,
  type GradientJobData,
  type GradientJobResult,
  type JobContext,
  QUEUE,
  SHARD_JOB,
  type ShardJobData,
} from './protocol.js';
import { connectRedis } from './redis.js';

/** How a worker turns a job's context into its run's model and data (the CLI provides it). */
export interface WorkerResolver {
  /** Prepares the run's model from `context.config`; refuses when it differs from `context.modelFingerprint`. */
  prepare(context: JobContext): Promise<PreparedRun>;
}

/** A run prepared by a worker: the caches and training data its jobs name. */
export interface PreparedRun {
  /** The cache a shard job's `fill` names. */
  cacheFill(fill: unknown): Promise<CacheFill>;
  /** What a gradient job's `training` names: the method, model and training data, with ω̄. */
  trainingRequest(training: unknown, omegaBar: Classifier): Promise<EvaluatorRequest>;
  /** Frees the run's backend and caches. */
  dispose(): Promise<void>;
}

/** Where the queue is, how many jobs run at once, and how jobs find their run. */
export interface WorkerOptions {
  /** redis://HOST:PORT */
  readonly redis: string;
  /** Jobs run at once in this process (default 1). */
  readonly concurrency?: number;
  /**
   * Seconds without a sign of life after which a job is taken to be lost (its worker was killed or cut
   * off) and given to another worker (default 30).
   */
  readonly stallSeconds?: number;
  readonly resolver: WorkerResolver;
  /** One event per job start, end and failure. */
  readonly log?: (event: Readonly<Record<string, unknown>>) => void;
}

/** A worker taking jobs until closed. */
export interface RunningWorker {
  /** Waits for the jobs in hand to finish, then disconnects. */
  close(): Promise<void>;
}

/** A stalled job goes back to the queue this many times before it fails for good. */
const MAX_STALLS = 3;

/**
 * Takes jobs from the queue until closed: cache shards (written to the shared storage) and gradient
 * sums. Prepared models, opened caches, compiled programs and published parameters are kept between
 * jobs, keyed by what identifies them, so a run's later jobs cost only their own work.
 */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const redis = await connectRedis(options.redis);
  const runs = new Memo<PreparedRun>(2, (run) => run.dispose());
  const writers = new Memo<{ fill: CacheFill; writer: OpenShardWriter }>(4, ({ writer }) => writer.close());
  const evaluators = new Memo<GradientEvaluator>(4, (evaluator) => evaluator.dispose());
  const classifiers = new Memo<Classifier>(8);
  const parameters = new Memo<{ version: number; params: Map<string, HostTensor> }>(4);
  const identity = `${hostname()} pid ${process.pid}`;

  const prepared = (context: JobContext) =>
    runs.get(context.configFingerprint, async () => {
      try {
        return await options.resolver.prepare(context);
      } catch (error) {
        // The same files give the same model on every retry: no point in trying again.
        throw new UnrecoverableError(`worker ${identity}: ${(error as Error).message}`);
      }
    });
  const blobKey = (ref: BlobRef) => ('redis' in ref ? ref.redis : ref.file);

  const processor = async (job: Job): Promise<unknown> => {
    const { context } = job.data as { context: JobContext };
    if (context?.version !== GRADFEAT_VERSION) {
      throw new UnrecoverableError(
        `worker ${identity} runs gradfeat ${GRADFEAT_VERSION} but the coordinator runs ${context?.version ?? 'an unknown version'}; run the same gradfeat version on every machine`,
      );
    }
    const run = await prepared(context);
    const blobs = new BlobStore(redis, context.blobDirectory);
    if (job.name === SHARD_JOB) {
      const data = job.data as ShardJobData;
      const { fill, writer } = await writers.get(`${context.configFingerprint} ${JSON.stringify(data.fill)}`, async () => {
        const cacheFill = await run.cacheFill(data.fill);
        return { fill: cacheFill, writer: await cacheFill.open() };
      });
      if (fill.directory !== data.directory) {
        throw new UnrecoverableError(`worker ${identity} resolves this cache to ${fill.directory}, the coordinator to ${data.directory}`);
      }
      return writeShardOf(fill, writer, data.index);
    }
    if (job.name === GRADIENT_JOB) {
      const data = job.data as GradientJobData;
      const omegaBar = await classifiers.get(blobKey(data.omegaBar), async () => unpackClassifier(await blobs.get(data.omegaBar)));
      const evaluator = await evaluators.get(
        `${context.configFingerprint} ${JSON.stringify(data.training)} ${blobKey(data.omegaBar)}`,
        async () => localGradientEvaluator(await run.trainingRequest(data.training, omegaBar)),
      );
      const { version, params } = await parameters.get(blobKey(data.params), async () => {
        const { meta, tensors } = unpackTensors(await blobs.get(data.params));
        return { version: meta.version as number, params: tensors as Map<string, HostTensor> };
      });
      if (version !== data.version) throw new Error(`the published parameters are version ${version}, the job wants ${data.version}`);
      const sums = await evaluator.sums(params, decodeRows(data.rows), data.chunk);
      const grads = new Map([...sums.grads].map(([name, sum]) => [name, { shape: params.get(name)?.shape ?? [sum.length], data: sum }]));
      const result: GradientJobResult = { loss: sums.loss, grads: await blobs.put(`${job.id}-grads`, packTensors(grads)) };
      return result;
    }
    throw new UnrecoverableError(`worker ${identity} does not know jobs named '${job.name}'`);
  };

  const stallMs = (options.stallSeconds ?? 30) * 1000;
  const worker = new Worker(QUEUE, processor, {
    connection: redis,
    concurrency: options.concurrency ?? 1,
    lockDuration: stallMs,
    stalledInterval: stallMs,
    maxStalledCount: MAX_STALLS,
  });
  const describe = (job: Job | undefined) => ({ job: job?.name, id: job?.id, attempt: job?.attemptsStarted });
  worker.on('active', (job) => options.log?.({ event: 'started', ...describe(job) }));
  worker.on('completed', (job) => options.log?.({ event: 'completed', ...describe(job) }));
  worker.on('failed', (job, error) => options.log?.({ event: 'failed', ...describe(job), error: error.message }));
  worker.on('error', (error) => options.log?.({ event: 'error', error: error.message }));
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      await Promise.all([runs.clear(), writers.clear(), evaluators.clear()]);
      redis.disconnect();
    },
  };
}

/** Values made once per key, the least recently used beyond `size` released. */
class Memo<T> {
  private readonly values = new Map<string, Promise<T>>();

  constructor(
    private readonly size: number,
    private readonly release?: (value: T) => unknown,
  ) {}

  get(key: string, make: () => Promise<T>): Promise<T> {
    let value = this.values.get(key);
    if (value) this.values.delete(key);
    else {
      value = make();
      // A failed make is not kept: the next job tries again.
      value.catch(() => this.values.delete(key));
    }
    this.values.set(key, value);
    while (this.values.size > this.size) {
      const [oldest, evicted] = this.values.entries().next().value as [string, Promise<T>];
      this.values.delete(oldest);
      evicted.then((v) => this.release?.(v)).catch(() => {});
    }
    return value;
  }

  async clear(): Promise<void> {
    const values = [...this.values.values()];
    this.values.clear();
    for (const value of values) await value.then((v) => this.release?.(v)).catch(() => {});
  }
}
