import { checkOutputs, checkSignature, KERNEL_NAMES, type Kernels, type SignedProgram } from '@gradfeat/core/engine';
import { OnnxGraphBuilder, type SymbolicTensor } from './graph-builder.js';
import type { LoweringOptions } from './lowering-options.js';

/** How `traceProgram` names and annotates the model, and which ONNX Runtime-only kernels it may use. */
export interface TraceOptions extends LoweringOptions {
  /** Program name for errors, and the ONNX graph's name. */
  readonly name: string;
  readonly docString?: string;
  /** Stored as the model's metadata_props. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** A program serialized as an ONNX model. */
export interface TracedProgram {
  /** The serialized ModelProto. */
  readonly model: Uint8Array;
  /** Program output key → ONNX output name (the same unless it collided with an input's). */
  readonly outputNames: Readonly<Record<string, string>>;
  /** Whether the program, traced with a fixed batch size, lowers faster (so a backend may trace it once per batch size it runs). */
  readonly fasterPerBatchSize: boolean;
}

/** A one-kernel program: tracing and starting it shows whether an execution provider can run at all. */
export const PROVIDER_PROBE: SignedProgram = { program: (k, inputs) => ({ y: k.abs(inputs.x) }), inputs: { x: [1] }, outputs: { y: [1] } };

/** A failure inside one kernel call; carries the program and kernel so the user knows where to look. */
class KernelTraceError extends Error {
  constructor(program: string, kernel: string, cause: unknown) {
    super(`program '${program}', kernel '${kernel}': ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'KernelTraceError';
  }
}

/** The builder's kernels, each wrapped so that a failure names the program and the kernel. */
function tracingKernels(builder: OnnxGraphBuilder, program: string): Kernels<SymbolicTensor> {
  const kernels: Record<string, unknown> = {};
  for (const name of KERNEL_NAMES) {
    const kernel = builder[name] as (...args: unknown[]) => unknown;
    kernels[name] = (...args: unknown[]) => {
      try {
        return kernel.apply(builder, args);
      } catch (error) {
        throw new KernelTraceError(program, name, error);
      }
    };
  }
  return kernels as unknown as Kernels<SymbolicTensor>;
}

/**
 * Runs the program once on symbolic tensors and serializes what it did as an ONNX model, after
 * checking its signature and then the traced outputs' names and (symbolic) shapes against it.
 */
export function traceProgram(signed: SignedProgram, options: TraceOptions): TracedProgram {
  checkSignature(options.name, signed);
  const builder = new OnnxGraphBuilder(options);
  const inputs: Record<string, SymbolicTensor> = {};
  for (const [name, shape] of Object.entries(signed.inputs)) inputs[name] = builder.input(name, shape);
  let results: Record<string, SymbolicTensor>;
  try {
    results = signed.program(tracingKernels(builder, options.name), inputs);
  } catch (error) {
    if (error instanceof KernelTraceError) throw error;
    throw new Error(`program '${options.name}' failed while being traced for ONNX Runtime: ${(error as Error).message}`, { cause: error });
  }
  checkOutputs(options.name, signed.outputs, Object.fromEntries(Object.entries(results).map(([key, value]) => [key, value.shape])));
  const outputNames: Record<string, string> = {};
  for (const [key, value] of Object.entries(results)) {
    try {
      outputNames[key] = builder.output(key, value);
    } catch (error) {
      throw new Error(`program '${options.name}': output '${key}': ${(error as Error).message}`, { cause: error });
    }
  }
  return {
    model: builder.encode({ graphName: options.name, docString: options.docString, metadata: options.metadata }),
    outputNames,
    fasterPerBatchSize: builder.fasterPerBatchSize,
  };
}
