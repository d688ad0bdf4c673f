import { availableParallelism } from 'node:os';
import { BATCH, type Backend, type SignedProgram } from '@gradfeat/core/engine';
import type * as Ort from 'onnxruntime-node';
import { disableOrtTelemetry } from '../ort-telemetry.js';
import { NCHWC_DOMAIN } from './blocked-layout.js';
import { OnnxCompiledProgram, oneSession, sessionPerBatchSize } from './compiled-program.js';
import { OnnxGraph } from './onnx-graph.js';
import { PROVIDER_PROBE, traceProgram } from './trace.js';

type OnnxRuntime = typeof Ort;

/** ONNX Runtime execution providers gradfeat can ask for. */
export type OnnxExecutionProvider = 'cpu' | 'cuda';

/** Settings of `createOnnxBackend`. */
export interface OnnxBackendOptions {
  /** Execution providers in order of preference; one that cannot start is skipped with a reported reason. Default ['cpu']. */
  readonly executionProviders?: readonly OnnxExecutionProvider[];
  /** Threads per operator; default every core. */
  readonly intraOpNumThreads?: number;
  /**
   * Whether ONNX Runtime's worker threads spin between operators instead of sleeping: faster on an
   * idle machine, much slower when other processes want the cores. Default: on (see README's speed notes).
   */
  readonly spinning?: boolean;
  /** Receives the reason a preferred execution provider was skipped; default console.warn. */
  readonly onFallback?: (reason: string) => void;
  /** Overrides of ONNX Runtime's session options, e.g. { enableProfiling: true } to profile a step. */
  readonly sessionOptions?: Ort.InferenceSession.SessionOptions;
  /**
   * Run convolutions on ONNX Runtime's NCHWc layout where its CPU kernels support it (default true);
   * false traces portable standard ONNX only.
   */
  readonly nchwc?: boolean;
}

/** A backend on ONNX Runtime, with the execution provider it runs on. */
export interface OnnxBackend extends Backend {
  readonly executionProvider: OnnxExecutionProvider;
  /** The NCHWc block size the traced graphs use, or undefined when they stay portable. */
  readonly nchwcBlockSize?: number;
  /** Why a preferred execution provider was skipped, when one was. */
  readonly fallbackReason?: string;
}

let runtime: Promise<OnnxRuntime> | undefined;

/** Loads onnxruntime-node on first use, so registering the plugin never fails on a platform it lacks. */
export function loadOnnxRuntime(): Promise<OnnxRuntime> {
  disableOrtTelemetry();
  runtime ??= import('onnxruntime-node').catch((error: Error) => {
    runtime = undefined;
    throw new Error(`onnxruntime-node cannot be loaded on ${process.platform}-${process.arch}: ${error.message}`, { cause: error });
  });
  return runtime;
}

/** Starts a session of a one-node graph on the provider, which fails when its libraries are missing. */
async function probeExecutionProvider(ort: OnnxRuntime, provider: OnnxExecutionProvider): Promise<void> {
  const { model } = traceProgram(PROVIDER_PROBE, { name: `${provider}-probe` });
  const session = await ort.InferenceSession.create(model, { executionProviders: [provider] });
  await session.release();
}

/**
 * The channel block of ONNX Runtime's NCHWc kernels on this CPU (16 with AVX-512, 8 with AVX2), read
 * from the shape its ReorderInput gives 4 channels; undefined where the build or CPU has none.
 */
async function probeNchwcBlockSize(ort: OnnxRuntime): Promise<number | undefined> {
  const graph = new OnnxGraph();
  graph.addInput('x', [1, 4, 1, 1]);
  graph.addOutput('y', graph.node('ReorderInput', ['x'], { domain: NCHWC_DOMAIN }), [1, -1, 1, 1]);
  try {
    const session = await ort.InferenceSession.create(graph.encode({ graphName: 'nchwc-probe' }));
    try {
      const { y } = await session.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) });
      const block = y.dims[1];
      return block === 8 || block === 16 ? block : undefined;
    } finally {
      await session.release();
    }
  } catch {
    return undefined;
  }
}

/**
 * A gradfeat backend on ONNX Runtime: each Program is traced once into an ONNX graph and run as one
 * InferenceSession, whose batch size may change from run to run.
 */
export async function createOnnxBackend(options: OnnxBackendOptions = {}): Promise<OnnxBackend> {
  const ort = await loadOnnxRuntime();
  const preferred = options.executionProviders ?? ['cpu'];
  if (preferred.length === 0) throw new Error('executionProviders is empty; list at least one of cpu, cuda');
  const skipped: string[] = [];
  let provider: OnnxExecutionProvider | undefined;
  for (const candidate of preferred) {
    try {
      if (candidate !== 'cpu') await probeExecutionProvider(ort, candidate);
      provider = candidate;
      break;
    } catch (error) {
      skipped.push(`${candidate}: ${(error as Error).message}`);
    }
  }
  if (!provider) throw new Error(`no ONNX Runtime execution provider could start:\n  ${skipped.join('\n  ')}`);
  const fallbackReason = skipped.length > 0 ? `ONNX Runtime runs on ${provider}; skipped ${skipped.join('; ')}` : undefined;
  if (fallbackReason) (options.onFallback ?? console.warn)(fallbackReason);

  const sessionOptions: Ort.InferenceSession.SessionOptions = {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.intraOpNumThreads ?? availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: options.spinning === false ? '0' : '1' } } },
    // Errors only: ORT's warnings about constants a traced program does not use are noise here.
    logSeverityLevel: 3,
    ...options.sessionOptions,
  };
  const nchwcBlockSize = provider === 'cpu' && options.nchwc !== false ? await probeNchwcBlockSize(ort) : undefined;
  return {
    name: `onnxruntime-${provider}`,
    executionProvider: provider,
    fallbackReason,
    nchwcBlockSize,
    async compile(program, compileOptions) {
      const name = compileOptions?.name ?? 'anonymous';
      const traced = traceProgram(program, { name, nchwcBlockSize });
      // Spinning workers would take the cores from the process's own other threads.
      const spinning = compileOptions?.sharesCores ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {};
      const startSession = async (model: Uint8Array) => {
        try {
          return await ort.InferenceSession.create(model, { ...sessionOptions, ...spinning });
        } catch (error) {
          throw new Error(
            `program '${name}': ONNX Runtime rejected the traced graph (${(error as Error).message}); write it out with saveProgramAsOnnx to inspect it`,
            { cause: error },
          );
        }
      };
      // The trace above checked the program; a batch of a new size traces it again with that size fixed.
      const sessions = traced.fasterPerBatchSize
        ? sessionPerBatchSize((batch) => startSession(traceProgram(withBatchSize(program, batch), { name, nchwcBlockSize }).model))
        : oneSession(await startSession(traced.model));
      return new OnnxCompiledProgram(ort.Tensor, sessions, name, program.inputs, traced.outputNames, { writesIntoCallerBuffers: true });
    },
  };
}

/** The program with the batch axes of its signature fixed at `batch` rows. */
function withBatchSize(signed: SignedProgram, batch: number): SignedProgram {
  const fixed = (shapes: Readonly<Record<string, readonly number[]>>) =>
    Object.fromEntries(
      Object.entries(shapes).map(([name, shape]) => [name, shape.map((d, axis) => (axis === 0 && d === BATCH ? batch : d))]),
    );
  return { program: signed.program, inputs: fixed(signed.inputs), outputs: fixed(signed.outputs) };
}

/** Execution providers for the plugin (and so the CLI), e.g. GRADFEAT_ONNX_PROVIDERS=cuda,cpu. */
export const PROVIDERS_ENV_VAR = 'GRADFEAT_ONNX_PROVIDERS';

function providersFromEnvironment(): OnnxExecutionProvider[] | undefined {
  const value = process.env[PROVIDERS_ENV_VAR];
  if (!value) return undefined;
  const providers = value.split(',').map((p) => p.trim());
  for (const provider of providers) {
    if (provider !== 'cpu' && provider !== 'cuda')
      throw new Error(`${PROVIDERS_ENV_VAR}: '${provider}' is not an execution provider; expected cpu or cuda, e.g. cuda,cpu`);
  }
  return providers as OnnxExecutionProvider[];
}

/** Thread settings for the plugin (and so the CLI): GRADFEAT_ONNX_THREADS=1, GRADFEAT_ONNX_SPINNING=0. */
export const THREADS_ENV_VAR = 'GRADFEAT_ONNX_THREADS';
/** See THREADS_ENV_VAR. */
export const SPINNING_ENV_VAR = 'GRADFEAT_ONNX_SPINNING';

function threadingFromEnvironment(): Pick<OnnxBackendOptions, 'intraOpNumThreads' | 'spinning'> {
  const threads = process.env[THREADS_ENV_VAR];
  const spinning = process.env[SPINNING_ENV_VAR];
  if (threads !== undefined && !(Number.isInteger(Number(threads)) && Number(threads) >= 1)) {
    throw new Error(`${THREADS_ENV_VAR}: '${threads}' is not a thread count; expected a whole number ≥ 1`);
  }
  if (spinning !== undefined && spinning !== '0' && spinning !== '1') {
    throw new Error(`${SPINNING_ENV_VAR}: '${spinning}' must be 0 (worker threads sleep between operators) or 1 (they spin)`);
  }
  return {
    intraOpNumThreads: threads === undefined ? undefined : Number(threads),
    spinning: spinning === undefined ? undefined : spinning === '1',
  };
}

/**
 * The ONNX Runtime backend as the 'onnx' plugin starts it: providers from GRADFEAT_ONNX_PROVIDERS
 * (default cpu), threads from GRADFEAT_ONNX_THREADS and GRADFEAT_ONNX_SPINNING.
 */
export function createOnnxBackendFromEnvironment(): Promise<OnnxBackend> {
  return createOnnxBackend({ executionProviders: providersFromEnvironment(), ...threadingFromEnvironment() });
}
