import type { Backend, BackendPlugin, GradfeatPlugin } from '@gradfeat/core/engine';
import type * as OrtWeb from 'onnxruntime-web';
import { OnnxCompiledProgram, oneSession } from '../runtime/compiled-program.js';
import { onnx } from '../runtime/proto.js';
import { PROVIDER_PROBE, traceProgram } from '../runtime/trace.js';

type OnnxRuntimeWeb = typeof OrtWeb;

/** 'wasm': ONNX Runtime's CPU kernels compiled to WebAssembly. 'webgpu': its native WebGPU execution provider. */
export type OnnxWebExecutionProvider = 'wasm' | 'webgpu';

/** Settings of `createOnnxWebBackend`. */
export interface OnnxWebBackendOptions {
  /**
   * Execution providers in order of preference; default ['wasm']. 'webgpu' starts only where
   * navigator.gpu yields an adapter; one that cannot start is skipped with a reported reason.
   */
  readonly executionProviders?: readonly OnnxWebExecutionProvider[];
  /**
   * WebAssembly threads. Default: 1 unless the page is cross-origin isolated (served with COOP/COEP
   * headers), where threads can share memory; then one per core, at most 4.
   */
  readonly threads?: number;
  /** Where onnxruntime-web's .wasm and .mjs files are served (its env.wasm.wasmPaths); default: beside the bundle. */
  readonly wasmPaths?: string;
  /** Receives the reason a preferred execution provider was skipped; default console.warn. */
  readonly onFallback?: (reason: string) => void;
  /** Overrides of ONNX Runtime's session options. */
  readonly sessionOptions?: OrtWeb.InferenceSession.SessionOptions;
}

/** The onnxruntime-web backend: which provider it runs on, with how many threads. */
export interface OnnxWebBackend extends Backend {
  readonly executionProvider: OnnxWebExecutionProvider;
  /** The WebAssembly threads ONNX Runtime runs operators on. */
  readonly threads: number;
  /** Why a preferred execution provider was skipped, when one was. */
  readonly fallbackReason?: string;
}

interface GpuNavigator {
  readonly gpu?: { requestAdapter(): Promise<object | null> };
}

/** Why WebGPU cannot run here, or undefined when navigator.gpu yields an adapter. */
async function webGpuUnavailable(): Promise<string | undefined> {
  const gpu = (globalThis as { navigator?: GpuNavigator }).navigator?.gpu;
  if (!gpu) return 'navigator.gpu is not available (a browser without WebGPU, or not a secure context)';
  try {
    return (await gpu.requestAdapter()) ? undefined : 'navigator.gpu.requestAdapter() found no adapter';
  } catch (error) {
    return `navigator.gpu.requestAdapter() failed: ${(error as Error).message}`;
  }
}

/**
 * The binding for a provider: the WebAssembly-only build for 'wasm', the native WebGPU build for
 * 'webgpu'. Never the default `onnxruntime-web` import: its JavaScript WebGPU provider gives wrong
 * numbers without an error on gradfeat's graphs (a 9-input Concat exceeds its storage-buffer limit).
 */
function importBinding(provider: OnnxWebExecutionProvider): Promise<OnnxRuntimeWeb> {
  return provider === 'webgpu' ? import('onnxruntime-web/webgpu') : import('onnxruntime-web/wasm');
}

/**
 * Nodes of a traced model the provider cannot run, to be placed on the CPU: the WebGPU provider has
 * no MaxPool with an Indices output (what maxPoolJvp and maxPoolBackprop gather at).
 */
export function cpuOnlyNodes(model: Uint8Array, provider: OnnxWebExecutionProvider): string[] {
  if (provider !== 'webgpu') return [];
  const nodes = onnx.ModelProto.decode(model).graph?.node ?? [];
  return nodes
    .filter((node) => node.opType === 'MaxPool' && (node.output?.length ?? 0) > 1 && node.output?.[1])
    .map((node) => node.name ?? '');
}

function providerOption(provider: OnnxWebExecutionProvider, model: Uint8Array): OrtWeb.InferenceSession.ExecutionProviderConfig {
  if (provider === 'wasm') return 'wasm';
  const forceCpuNodeNames = cpuOnlyNodes(model, provider);
  // ONNX Runtime refuses an empty option value.
  return forceCpuNodeNames.length > 0 ? { name: 'webgpu', forceCpuNodeNames } : 'webgpu';
}

/** Starts a session of a one-node graph on the provider, which fails where the provider cannot run. */
async function probeProvider(ort: OnnxRuntimeWeb, provider: OnnxWebExecutionProvider): Promise<void> {
  const { model } = traceProgram(PROVIDER_PROBE, { name: `${provider}-probe` });
  const session = await ort.InferenceSession.create(model, { executionProviders: [providerOption(provider, model)] });
  await session.release();
}

/** More threads than this rarely help the small graphs of a page and take the cores from the page itself. */
const MAX_THREADS = 4;

/** Threads share memory only on cross-origin isolated pages; elsewhere ONNX Runtime would warn and use one. */
function defaultThreads(): number {
  const scope = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
  return scope.crossOriginIsolated === true ? Math.min(MAX_THREADS, scope.navigator?.hardwareConcurrency ?? 1) : 1;
}

async function startProvider(provider: OnnxWebExecutionProvider, options: OnnxWebBackendOptions, threads: number): Promise<OnnxRuntimeWeb> {
  if (provider === 'webgpu') {
    const reason = await webGpuUnavailable();
    if (reason) throw new Error(reason);
  }
  const ort = await importBinding(provider);
  ort.env.wasm.numThreads = threads;
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
  await probeProvider(ort, provider);
  return ort;
}

/**
 * A gradfeat backend on onnxruntime-web, in a browser (or Node): each Program is traced once into a
 * portable ONNX graph — no NCHWc layout, whose kernels the WebAssembly build lacks — and run as one
 * InferenceSession, whose batch size may change from run to run.
 */
export async function createOnnxWebBackend(options: OnnxWebBackendOptions = {}): Promise<OnnxWebBackend> {
  const preferred = options.executionProviders ?? ['wasm'];
  if (preferred.length === 0) throw new Error('executionProviders is empty; list at least one of wasm, webgpu');
  const threads = options.threads ?? defaultThreads();
  const skipped: string[] = [];
  let started: { provider: OnnxWebExecutionProvider; ort: OnnxRuntimeWeb } | undefined;
  for (const provider of preferred) {
    try {
      started = { provider, ort: await startProvider(provider, options, threads) };
      break;
    } catch (error) {
      skipped.push(`${provider}: ${(error as Error).message}`);
    }
  }
  if (!started) throw new Error(`no onnxruntime-web execution provider could start:\n  ${skipped.join('\n  ')}`);
  const { provider, ort } = started;
  const fallbackReason = skipped.length > 0 ? `onnxruntime-web runs on ${provider}; skipped ${skipped.join('; ')}` : undefined;
  if (fallbackReason) (options.onFallback ?? console.warn)(fallbackReason);
  return {
    name: `onnxruntime-web-${provider}`,
    executionProvider: provider,
    threads,
    fallbackReason,
    async compile(program, compileOptions) {
      const name = compileOptions?.name ?? 'anonymous';
      const traced = traceProgram(program, { name });
      let session: OrtWeb.InferenceSession;
      try {
        session = await ort.InferenceSession.create(traced.model, {
          executionProviders: [providerOption(provider, traced.model)],
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
          // Errors only: ORT's warnings about constants a traced program does not use are noise here.
          logSeverityLevel: 3,
          ...options.sessionOptions,
        });
      } catch (error) {
        throw new Error(`program '${name}': onnxruntime-web (${provider}) rejected the traced graph (${(error as Error).message})`, {
          cause: error,
        });
      }
      return new OnnxCompiledProgram(ort.Tensor, oneSession(session), name, program.inputs, traced.outputNames, {
        writesIntoCallerBuffers: false,
      });
    },
  };
}

/** The onnxruntime-web backend family 'onnx-web' (priority 20): what a page has instead of the Node backends. */
export const onnxWebBackendPlugin: BackendPlugin = {
  name: 'onnx-web',
  priority: 20,
  create: () => createOnnxWebBackend(),
};

/** The `@gradfeat/backend-onnx/web` plugin: the 'onnx-web' backend; importing that entry registers it. */
export const onnxWebPlugin: GradfeatPlugin = { name: '@gradfeat/backend-onnx/web', backends: [onnxWebBackendPlugin] };
