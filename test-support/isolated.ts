import { type ChildProcess, fork } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Calls into code that may crash natively, hang or allocate without bound, in a child process: the
 * test runner survives any of them and sees what happened. A child that dies or hangs is replaced
 * for the next call.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** Loading the module under test (TypeScript through tsx) in a fresh child is not part of a call's time. */
const STARTUP_ALLOWANCE_MS = 30_000;
const repo = resolve(here, '..');

export interface CallRequest {
  readonly id: number;
  readonly module: string;
  readonly exportName: string;
  readonly args: readonly unknown[];
}

export interface ThrownError {
  readonly name: string;
  readonly message: string;
  /** The `path` field of gradfeat's file errors (DatasetFileError), when the error has one. */
  readonly path?: string;
  /** The errors of its `cause` chain, outermost first. */
  readonly causes: readonly { readonly name: string; readonly message: string }[];
}

interface Measured {
  readonly ms: number;
  /** How far the call raised the child's peak resident memory (a lower bound of what it allocated). */
  readonly peakGrowthBytes: number;
}

export type CallOutcome =
  | ({ readonly kind: 'returned'; readonly value: unknown } & Measured)
  | ({ readonly kind: 'threw'; readonly error: ThrownError } & Measured)
  | { readonly kind: 'crashed'; readonly code: number | null; readonly signal: string | null; readonly stderr: string }
  | { readonly kind: 'timed-out'; readonly ms: number };

interface Pending {
  readonly id: number;
  readonly resolve: (outcome: CallOutcome) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class Isolated {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private pending: Pending | undefined;
  private stderr = '';
  private nextId = 0;

  /** `module` is the absolute path of a TypeScript or JavaScript module; `timeoutMs` bounds each call. */
  constructor(
    private readonly module: string,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Calls `exportName(...args)` in the child (arguments and result travel as JSON); one call at a time.
   * A child's first call also loads the module under test, which gets STARTUP_ALLOWANCE_MS more.
   */
  async call(exportName: string, ...args: unknown[]): Promise<CallOutcome> {
    if (this.pending) throw new Error('Isolated.call: one call at a time');
    const fresh = this.child === undefined;
    const child = await this.start();
    return new Promise((resolvePromise, reject) => {
      const id = this.nextId++;
      const limit = this.timeoutMs + (fresh ? STARTUP_ALLOWANCE_MS : 0);
      const timer = setTimeout(() => {
        // Forget the child first, so that its exit is not taken for a crash of the next call.
        this.child = undefined;
        this.ready = undefined;
        this.settle({ kind: 'timed-out', ms: limit });
        child.kill('SIGKILL');
      }, limit);
      this.pending = { id, resolve: resolvePromise, reject, timer };
      child.send({ id, module: this.module, exportName, args } satisfies CallRequest);
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.ready = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise));
      child.kill('SIGKILL');
      await exited;
    }
  }

  private start(): Promise<ChildProcess> {
    if (this.child && this.ready) return this.ready.then(() => this.child as ChildProcess);
    this.stderr = '';
    const child = fork(join(here, 'isolated-child.ts'), [], {
      cwd: repo,
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.child = child;
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    this.ready = new Promise((resolvePromise, reject) => {
      child.once('error', reject);
      child.on('message', (message: { ready?: boolean; id?: number; outcome?: CallOutcome; setupError?: ThrownError }) => {
        const pending = this.pending;
        if (message.ready) resolvePromise();
        else if (pending && message.id === pending.id && message.outcome) this.settle(message.outcome);
        else if (pending && message.id === pending.id && message.setupError) {
          clearTimeout(pending.timer);
          this.pending = undefined;
          pending.reject(new Error(`isolated call could not start: ${message.setupError.message}`));
        }
      });
      child.once('exit', (code, signal) => {
        // A child already forgotten (timed out, closed) takes no call down with it.
        if (this.child === child) {
          this.child = undefined;
          this.ready = undefined;
          this.settle({ kind: 'crashed', code, signal, stderr: this.stderr });
        }
        reject(new Error(`isolated child exited before it was ready (code ${code}, signal ${signal}): ${this.stderr}`));
      });
    });
    return this.ready.then(() => child);
  }

  private settle(outcome: CallOutcome): void {
    const pending = this.pending;
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending = undefined;
    pending.resolve(outcome);
  }
}

/** One line saying what happened, for assertion messages. */
export function describeOutcome(outcome: CallOutcome): string {
  switch (outcome.kind) {
    case 'returned':
      return `returned ${JSON.stringify(outcome.value)?.slice(0, 200)} in ${outcome.ms.toFixed(0)} ms, peak +${mebibytes(outcome.peakGrowthBytes)}`;
    case 'threw':
      return `threw ${outcome.error.name}: ${outcome.error.message.slice(0, 300)} (causes: ${outcome.error.causes.map((c) => `${c.name}: ${c.message.slice(0, 100)}`).join('; ') || 'none'}) in ${outcome.ms.toFixed(0)} ms, peak +${mebibytes(outcome.peakGrowthBytes)}`;
    case 'crashed':
      return `crashed the process (exit code ${outcome.code}, signal ${outcome.signal}): ${outcome.stderr.slice(-600)}`;
    case 'timed-out':
      return `did not finish within ${outcome.ms} ms`;
  }
}

export function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
