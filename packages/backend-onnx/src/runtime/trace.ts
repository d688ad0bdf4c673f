import { BATCH, KERNEL_NAMES, type Kernels, type Program, type Shape } from '@gradfeat/core';
import { OnnxGraphBuilder, type SymbolicTensor } from './graph-builder.js';
import type { LoweringOptions } from './lowering-options.js';
import { describeShape } from './symbolic-shape.js';

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

function checkInputShape(program: string, name: string, shape: Shape): void {
  const valid = shape.every((d, axis) => (Number.isInteger(d) && d > 0) || (d === BATCH && axis === 0));
  if (!valid) {
    throw new Error(
      `program '${program}': input '${name}' has shape ${describeShape(shape)}; sizes must be positive, with -1 allowed only for the batch (axis 0)`,
    );
  }
}

/** Runs the program once on symbolic tensors and serializes what it did as an ONNX model. */
export function traceProgram(program: Program, inputShapes: Readonly<Record<string, Shape>>, options: TraceOptions): TracedProgram {
  const builder = new OnnxGraphBuilder(options);
  const inputs: Record<string, SymbolicTensor> = {};
  for (const [name, shape] of Object.entries(inputShapes)) {
    checkInputShape(options.name, name, shape);
    inputs[name] = builder.input(name, shape);
  }
  let results: Record<string, SymbolicTensor>;
  try {
    results = program(tracingKernels(builder, options.name), inputs);
  } catch (error) {
    if (error instanceof KernelTraceError) throw error;
    throw new Error(`program '${options.name}' failed while being traced for ONNX Runtime: ${(error as Error).message}`, { cause: error });
  }
  const outputNames: Record<string, string> = {};
  for (const [key, value] of Object.entries(results)) {
    try {
      outputNames[key] = builder.output(key, value);
    } catch (error) {
      throw new Error(`program '${options.name}': output '${key}': ${(error as Error).message}`, { cause: error });
    }
  }
  if (Object.keys(outputNames).length === 0) throw new Error(`program '${options.name}' returned no outputs`);
  return {
    model: builder.encode({ graphName: options.name, docString: options.docString, metadata: options.metadata }),
    outputNames,
    fasterPerBatchSize: builder.fasterPerBatchSize,
  };
}
