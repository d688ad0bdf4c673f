import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type DecoderChoice, loadSharp } from './decode.js';
import { type DecodeJob, type DecodeResult, runDecodeJob } from './decode-job.js';

interface Pending {
  readonly resolve: (result: DecodeResult) => void;
  readonly reject: (error: Error) => void;
}

interface PoolWorker {
  readonly thread: Worker;
  /** The job it is running, if any. */
  busy?: { readonly id: number } & Pending;
}

/** More decoding threads than this only add memory (each holds one image at its peak), never speed. */
export const MAX_DECODE_WORKERS = 64;

/**
 * Worker threads that decode and transform images, one job each at a time. Size 0 runs jobs on the
 * calling thread. Idle workers are unref'd, so a pool left open does not keep the process alive.
 */
export class DecodePool {
  private readonly queue: { readonly id: number; readonly job: DecodeJob; readonly pending: Pending }[] = [];
  private nextId = 0;
  private failure: Error | undefined;

  private constructor(private readonly workers: PoolWorker[]) {
    for (const worker of workers) {
      worker.thread.on('message', (message: { id: number; result?: DecodeResult; error?: string }) => this.onMessage(worker, message));
      worker.thread.on('error', (error) => this.onCrash(worker, error));
      worker.thread.on('exit', (code) => this.onCrash(worker, new Error(`decode worker exited with code ${code}`)));
      worker.thread.unref();
    }
  }

  /** A pool of `size` workers (default: one per core). */
  static async create(size: number = availableParallelism(), decoder: DecoderChoice = 'auto'): Promise<DecodePool> {
    if (!Number.isInteger(size) || size < 0 || size > MAX_DECODE_WORKERS) {
      throw new Error(`decode pool size must be a whole number from 0 to ${MAX_DECODE_WORKERS}, got ${size}`);
    }
    // Native addons must stay loaded in the main thread while workers use them, or glibc unloads
    // libvips when the first worker exits and later workers fail to load it ("did not self-register").
    if (decoder !== 'js') await loadSharp();
    return new DecodePool(Array.from({ length: size }, () => ({ thread: spawnWorker() })));
  }

  get size(): number {
    return this.workers.length;
  }

  /** Decodes and transforms one job on the next free worker. */
  run(job: DecodeJob): Promise<DecodeResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.workers.length === 0) return runDecodeJob(job);
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, job, pending: { resolve, reject } });
      this.dispatch();
    });
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    this.failure ??= new Error('decode pool is closed');
    const workers = this.workers.splice(0);
    for (const { busy } of workers) busy?.reject(this.failure);
    for (const { pending } of this.queue.splice(0)) pending.reject(this.failure);
    await Promise.all(workers.map(({ thread }) => thread.terminate()));
  }

  private dispatch(): void {
    for (const worker of this.workers) {
      const next = worker.busy ? undefined : this.queue.shift();
      if (!next) continue;
      worker.busy = { id: next.id, ...next.pending };
      worker.thread.ref();
      worker.thread.postMessage({ id: next.id, job: next.job });
    }
  }

  private onMessage(worker: PoolWorker, message: { id: number; result?: DecodeResult; error?: string }): void {
    const busy = worker.busy;
    if (!busy || busy.id !== message.id) return;
    worker.busy = undefined;
    worker.thread.unref();
    if (message.result) busy.resolve(message.result);
    else busy.reject(new Error(`decode worker failed: ${message.error}`));
    this.dispatch();
  }

  /** A worker that dies takes the pool down: its job is lost, and every later job would wait forever. */
  private onCrash(worker: PoolWorker, error: Error): void {
    if (this.failure) return;
    this.failure = error;
    worker.busy?.reject(error);
    void this.close();
  }
}

/**
 * Built code runs `decode-worker.js` directly. From the TypeScript sources (tests, tsx) the worker
 * first registers tsx's loader, which it does not inherit from the parent, and resolves workspace
 * packages to their sources (the `source` condition) as the tests do.
 */
function spawnWorker(): Worker {
  const fromSources = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSources ? './decode-worker.ts' : './decode-worker.js', import.meta.url);
  if (!fromSources) return new Worker(entry);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { eval: true, execArgv: ['--conditions=source'] });
}
