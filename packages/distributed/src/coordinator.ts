import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addSums,
  type Classifier,
  type EvaluatorRequest,
  type GradientEvaluator,
  type GradientEvaluatorFactory,
  zeroSums,
} from '@gradfeat/core';
import type { ShardEntry, ShardRunner } from '@gradfeat/datasets';
import { type Job, type JobsOptions, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { type BlobRef, BlobStore, packTensors, unpackTensors } from './blobs.js';
import {
  encodeRows,
  GRADFEAT_VERSION,
  GRADIENT_JOB,
  type GradientJobData,
  type GradientJobResult,
  type JobContext,
  QUEUE,
  SHARD_JOB,
  type ShardJobData,
  sha256,
} from './protocol.js';
import { connectRedis } from './redis.js';

/** Where the queue is, what every job carries, and how many gradient jobs a step is split into. */
export interface CoordinatorOptions {
  /** redis://HOST:PORT */
  readonly redis: string;
  readonly context: Omit<JobContext, 'version' | 'session'>;
  /** Jobs per gradient evaluation: the run's gradientParts. */
  readonly gradientJobs: number;
  /** Called as jobs of a phase complete. */
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

/** A lost or failed extraction job is retried with exponential backoff (1 s, 2 s, 4 s, …). */
const SHARD_JOB_OPTIONS: JobsOptions = { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnFail: false };
/** A step waits for its gradient jobs: retried sooner. */
const GRADIENT_JOB_OPTIONS: JobsOptions = { attempts: 3, backoff: { type: 'fixed', delay: 200 }, removeOnFail: false };

/**
 * The coordinator's side of a run spread over machines: it plans, sends jobs through a BullMQ queue,
 * collects their results and writes the run directory itself, as a local run does. Extraction jobs
 * write cache shards to the shared storage; gradient jobs return loss and gradient sums per part of a
 * batch (or of the training set, for L-BFGS), which it adds up in a fixed order.
 */
export class Coordinator {
  private constructor(
    private readonly redis: Redis,
    private readonly eventsConnection: Redis,
    private readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly blobs: BlobStore,
    readonly context: JobContext,
    /** Gradient jobs per step. */
    readonly parallelism: number,
    /** Workers listening when it started. */
    readonly workers: number,
    private readonly options: CoordinatorOptions,
  ) {}

  /** Connects to Redis and the queue, and counts the workers listening. */
  static async connect(options: CoordinatorOptions): Promise<Coordinator> {
    const redis = await connectRedis(options.redis);
    const queue = new Queue(QUEUE, { connection: redis });
    const eventsConnection = await connectRedis(options.redis);
    const events = new QueueEvents(QUEUE, { connection: eventsConnection });
    await events.waitUntilReady();
    const context: JobContext = { ...options.context, version: GRADFEAT_VERSION, session: randomBytes(6).toString('hex') };
    await mkdir(options.context.blobDirectory, { recursive: true });
    const coordinator = new Coordinator(
      redis,
      eventsConnection,
      queue,
      events,
      new BlobStore(redis, options.context.blobDirectory),
      context,
      options.gradientJobs,
      (await queue.getWorkers()).length,
      options,
    );
    await coordinator.dropEarlierSessions();
    return coordinator;
  }

  /** Writes a cache's missing shards as jobs; `fill` tells workers which cache of the run it is. */
  shardRunner(fill: unknown, phase: string): ShardRunner {
    return async (cache, manifest, record) => {
      const data = (index: number): ShardJobData => ({ context: this.context, fill, directory: cache.directory, index });
      // The same cache and shard always get the same job id: a restarted coordinator finds the jobs of the killed one.
      const jobs = manifest.missingShards.map((index) => ({
        name: SHARD_JOB,
        id: `shard-${sha256(`${cache.directory}\n${JSON.stringify(manifest.key)}`).slice(0, 16)}-${index}`,
        data: data(index),
      }));
      await this.runJobs<ShardEntry>(phase, jobs, SHARD_JOB_OPTIONS, async (job, entry) => {
        await record(entry);
        await job.remove();
      });
    };
  }

  /** Each step's (or L-BFGS evaluation's) gradient sums from jobs; `training` tells workers which data (see GradientJobData). */
  gradientEvaluator(training: (request: EvaluatorRequest) => unknown): GradientEvaluatorFactory {
    return async (request) => this.remoteEvaluator(request, training(request));
  }

  /** Closes the queue and the Redis connections. */
  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    this.redis.disconnect();
    this.eventsConnection.disconnect();
  }

  private async remoteEvaluator(request: EvaluatorRequest, training: unknown): Promise<GradientEvaluator> {
    const prefix = `${this.context.session}-${request.method}`;
    const omegaBar = await this.blobs.put(`${prefix}-omega`, packClassifier(request.omegaBar));
    let version = 0;
    return {
      sums: async (params, rows, chunk) => {
        version += 1;
        const published = await this.blobs.put(`${prefix}-params-${version}`, packTensors(params, { version }));
        // Parts are whole chunks, so each chunk is the same batch as in a local run.
        const chunks = Math.ceil(rows.length / chunk);
        const partRows = Math.ceil(chunks / this.parallelism) * chunk;
        const jobs = [];
        for (let start = 0, part = 0; start < rows.length; start += partRows, part++) {
          const data: GradientJobData = {
            context: this.context,
            training,
            omegaBar,
            params: published,
            version,
            rows: encodeRows(rows.slice(start, start + partRows)),
            chunk,
          };
          jobs.push({ name: GRADIENT_JOB, id: `${prefix}-${version}-${part}`, data });
        }
        const results: GradientJobResult[] = [];
        await this.runJobs<GradientJobResult>(`${request.method} step`, jobs, GRADIENT_JOB_OPTIONS, async (job, result) => {
          results[Number(job.id?.split('-').at(-1))] = result;
        });
        // Added in part order, whichever worker finished first.
        const grads = zeroSums(params);
        let loss = 0;
        for (const result of results) {
          loss += result.loss;
          const { tensors } = unpackTensors(await this.blobs.get(result.grads));
          addSums(grads, new Map([...tensors].map(([name, tensor]) => [name, tensor.data])));
          await this.blobs.delete(result.grads);
        }
        await this.blobs.delete(published);
        await Promise.all(jobs.map((job) => this.queue.remove(job.id)));
        return { loss, grads };
      },
      dispose: () => this.blobs.delete(omegaBar),
    };
  }

  /**
   * Sends jobs (reusing any with the same id that is still queued, running or done; replacing failed
   * ones) and waits for all; `onResult` sees each as it completes. A job that fails for good (after its
   * retries, or refused by a worker) stops the run with the worker's reason.
   */
  private async runJobs<R>(
    phase: string,
    jobs: readonly { name: string; id: string; data: unknown }[],
    options: JobsOptions,
    onResult: (job: Job, result: R) => Promise<void>,
  ): Promise<void> {
    const queued = await Promise.all(jobs.map((job) => this.enqueue(job, options)));
    let done = 0;
    this.options.onProgress?.(phase, 0, jobs.length);
    await Promise.all(
      queued.map(async (job) => {
        let result: R;
        try {
          result = await job.waitUntilFinished(this.events);
        } catch (error) {
          throw new Error(`${phase}: job ${job.id} failed on a worker: ${(error as Error).message}`);
        }
        await onResult(job, result);
        this.options.onProgress?.(phase, ++done, jobs.length);
      }),
    );
  }

  private async enqueue(job: { name: string; id: string; data: unknown }, options: JobsOptions): Promise<Job> {
    const existing = await this.queue.getJob(job.id);
    if (existing) {
      if ((await existing.getState()) !== 'failed') return existing;
      await existing.remove();
    }
    return this.queue.add(job.name, job.data, { ...options, jobId: job.id });
  }

  /** Gradient jobs and blobs a killed coordinator of this run left: their parameter versions are gone. */
  private async dropEarlierSessions(): Promise<void> {
    for (const job of await this.queue.getJobs(['waiting', 'delayed', 'prioritized', 'paused', 'completed', 'failed'])) {
      const context = (job?.data as { context?: JobContext } | undefined)?.context;
      if (job && job.name === GRADIENT_JOB && context?.run === this.context.run && context.session !== this.context.session) {
        await job.remove().catch(() => {});
      }
    }
    for (const name of await readdir(this.options.context.blobDirectory))
      await rm(join(this.options.context.blobDirectory, name), { force: true });
  }
}

function packClassifier(classifier: Classifier): Buffer {
  return packTensors(
    new Map([
      ['weight', classifier.weight],
      ['bias', classifier.bias],
    ]),
  );
}

/** Reads a classifier (ω̄) that packClassifier wrote. */
export function unpackClassifier(bytes: Buffer): Classifier {
  const { tensors } = unpackTensors(bytes);
  const weight = tensors.get('weight');
  const bias = tensors.get('bias');
  if (!(weight?.data instanceof Float32Array) || !(bias?.data instanceof Float32Array)) throw new Error('the ω̄ blob is not a classifier');
  return { weight: { shape: weight.shape, data: weight.data }, bias: { shape: bias.shape, data: bias.data } };
}

export type { BlobRef };
