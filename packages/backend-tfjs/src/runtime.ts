import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

/** The TF.js runtimes gradfeat can run on, fastest first: the order automatic selection tries. */
export const TFJS_RUNTIMES = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
/** One of `TFJS_RUNTIMES`. */
export type TfjsRuntime = (typeof TFJS_RUNTIMES)[number];

/** Environment variable that forces a runtime when the caller passes none. */
export const RUNTIME_ENV_VAR = 'GRADFEAT_TFJS_RUNTIME';

export interface StartedRuntime {
  readonly runtime: TfjsRuntime;
  /** Name of the backend inside tfjs-core: 'tensorflow', 'wasm' or 'cpu'. */
  readonly tfBackend: string;
  /** How it runs, e.g. 'SIMD, 1 thread'. */
  readonly detail: string;
  /** Whether the runtime's own conv backprop kernels are fast and complete enough to use. */
  readonly nativeConvBackprop: boolean;
}

/** A TF.js runtime that was tried and could not start, with the reason. */
export interface SkippedRuntime {
  readonly runtime: TfjsRuntime;
  readonly reason: string;
}

export interface RuntimeChoice {
  readonly started: StartedRuntime;
  /** Each runtime tried before the chosen one, with why it could not start. */
  readonly skipped: readonly SkippedRuntime[];
}

/** Resolves packages as this module sees them: optional peers, and where the wasm binaries are. */
const requireFromHere = createRequire(import.meta.url);

const NODE_PACKAGES = { 'node-gpu': '@tensorflow/tfjs-node-gpu', node: '@tensorflow/tfjs-node' } as const;

/** Threads for the threaded-SIMD wasm build; gradfeat's development machines have 2 cores. */
const WASM_THREADS = 2;

const starters: Record<TfjsRuntime, () => Promise<StartedRuntime>> = {
  'node-gpu': () => startNode('node-gpu'),
  node: () => startNode('node'),
  wasm: startWasm,
  cpu: startCpu,
};

/** TF.js backends are process-wide, so each runtime is started (or found unusable) once. */
const started = new Map<TfjsRuntime, Promise<StartedRuntime>>();

function startRuntime(runtime: TfjsRuntime): Promise<StartedRuntime> {
  let pending = started.get(runtime);
  if (!pending) {
    pending = starters[runtime]();
    started.set(runtime, pending);
  }
  return pending;
}

/**
 * The requested runtime (option, else GRADFEAT_TFJS_RUNTIME), or else the first of TFJS_RUNTIMES
 * that starts. A requested runtime that cannot start is an error, never a silent fallback.
 */
export async function chooseRuntime(option?: TfjsRuntime): Promise<RuntimeChoice> {
  const request = requestedRuntime(option);
  if (request) {
    try {
      return { started: await startRuntime(request.runtime), skipped: [] };
    } catch (error) {
      throw new Error(`TF.js runtime '${request.runtime}' was requested by ${request.source} but cannot start: ${reasonOf(error)}`, {
        cause: error,
      });
    }
  }
  const skipped: SkippedRuntime[] = [];
  for (const runtime of TFJS_RUNTIMES) {
    try {
      return { started: await startRuntime(runtime), skipped };
    } catch (error) {
      skipped.push({ runtime, reason: reasonOf(error) });
    }
  }
  throw new Error(`no TF.js runtime could start:\n  ${skipped.map((s) => `${s.runtime}: ${s.reason}`).join('\n  ')}`);
}

/** Checked here too: JavaScript callers and the environment can pass any string. */
function requestedRuntime(option?: string): { runtime: TfjsRuntime; source: string } | undefined {
  const [value, source] =
    option !== undefined ? [option, 'createTfjsBackend({ runtime })'] : [process.env[RUNTIME_ENV_VAR], RUNTIME_ENV_VAR];
  if (!value) return undefined;
  const runtime = TFJS_RUNTIMES.find((name) => name === value);
  if (!runtime) throw new Error(`${source} is '${value}'; expected one of ${TFJS_RUNTIMES.join(', ')}`);
  return { runtime, source };
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * tfjs-node and tfjs-node-gpu are optional peers (their install downloads libtensorflow), so they are
 * imported by a computed name that the type checker and bundlers leave alone.
 */
async function startNode(runtime: keyof typeof NODE_PACKAGES): Promise<StartedRuntime> {
  const packageName: string = NODE_PACKAGES[runtime];
  try {
    requireFromHere.resolve(packageName);
  } catch {
    throw new Error(`${packageName} is not installed (an optional peer: \`npm install ${packageName}\`, which downloads libtensorflow)`);
  }
  try {
    await import(packageName);
  } catch (error) {
    throw new Error(`${packageName} is installed but failed to load: ${reasonOf(error)}`);
  }
  if (!tf.findBackendFactory('tensorflow')) {
    throw new Error(
      `${packageName} loaded but registered no 'tensorflow' backend with gradfeat's @tensorflow/tfjs-core ${tf.version_core}; install the same version of both`,
    );
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`the 'tensorflow' backend of ${packageName} failed to initialise`);
  return { runtime, tfBackend: 'tensorflow', detail: `libtensorflow through ${packageName}`, nativeConvBackprop: true };
}

async function startWasm(): Promise<StartedRuntime> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // The .wasm binaries ship in the package's dist folder; pointing there means nothing is fetched.
  const packageEntry = requireFromHere.resolve('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(dirname(packageEntry) + sep);
  const env = tf.env();
  const simd = await env.getAsync('WASM_HAS_SIMD_SUPPORT');
  let threadNote = '';
  // TF.js never enables its threaded build under Node (tfjs issue #3830), so it is tried explicitly.
  if (env.getBool('IS_NODE') && simd && availableParallelism() >= WASM_THREADS) {
    env.set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(WASM_THREADS);
    // The detail below reports a failure, so TF.js's own warning and stack trace are muted.
    const threaded = await withTfjsWarningsMuted(() => tf.setBackend('wasm'));
    if (threaded) return wasmStarted(`threaded SIMD, ${wasm.getThreadsCount()} threads`);
    env.set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    threadNote = ` (the threaded-SIMD build failed to start under Node with ${WASM_THREADS} threads)`;
  }
  if (!(await tf.setBackend('wasm'))) throw new Error(`the wasm backend failed to initialise from ${dirname(packageEntry)}`);
  const threads = wasm.getThreadsCount();
  return wasmStarted(`${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}${threadNote}`);
}

function wasmStarted(detail: string): StartedRuntime {
  // tfjs-wasm has no Conv2DBackpropFilter and no depthwise backprops.
  return { runtime: 'wasm', tfBackend: 'wasm', detail, nativeConvBackprop: false };
}

async function startCpu(): Promise<StartedRuntime> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
  // Its first upload advises installing tfjs-node; chooseRuntime already reports why that was skipped.
  await withTfjsWarningsMuted(async () => tf.dispose(tf.scalar(0)));
  // The pure-JS backprop kernels are far slower than conv backprops built from its forward conv.
  return { runtime: 'cpu', tfBackend: 'cpu', detail: 'pure JavaScript', nativeConvBackprop: false };
}

/** Runs fn with TF.js's console warnings off (its PROD flag only gates logging). */
async function withTfjsWarningsMuted<R>(fn: () => Promise<R>): Promise<R> {
  const env = tf.env();
  const wasProd = env.getBool('PROD');
  env.set('PROD', true);
  try {
    return await fn();
  } finally {
    env.set('PROD', wasProd);
  }
}
