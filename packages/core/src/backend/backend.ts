import type { Shape } from '../ir/graph.js';
import { type HostTensor, sizeOf } from '../tensor.js';
import { completeKernels, type Kernels } from './kernels.js';

/**
 * A program is written once against the kernel contract and handed to a backend, which either runs
 * it eagerly on every call (TF.js) or traces it once into a graph (ONNX Runtime). Everything gradfeat
 * executes — trunk extraction, head features, each method's training step — is a Program.
 */
export type Program = <T>(k: Kernels<T>, inputs: Readonly<Record<string, T>>) => Record<string, T>;

/** A program's input that carries the batch (images, cut values, features); others are named by their role. */
export const INPUT = 'inputs';
/** The output key of single-output programs. */
export const OUTPUT = 'outputs';

/** Options of `CompiledProgram.run`. */
export interface RunOptions {
  /**
   * Outputs to write into these tensors (of exactly the output's shape) instead of new ones, e.g.
   * gradients into the same buffers every step; returned under their names like the others.
   */
  readonly into?: Readonly<Record<string, HostTensor>>;
  /** Return only these outputs (the others are still computed where the program needs them). */
  readonly only?: readonly string[];
}

/** A program compiled for fixed input shapes (batch free), ready to run many times. */
export interface CompiledProgram {
  /** Runs the program on host tensors; outputs by the keys the program returned. */
  run(inputs: Readonly<Record<string, HostTensor>>, options?: RunOptions): Promise<Record<string, HostTensor>>;
  /** Frees what compiling allocated; the program cannot run afterwards. */
  dispose(): void;
}

/** Copies results into the caller's tensors of `options.into` and keeps only the outputs asked for. */
export function deliverOutputs(
  program: string,
  results: Readonly<Record<string, HostTensor>>,
  options: RunOptions = {},
): Record<string, HostTensor> {
  const delivered: Record<string, HostTensor> = {};
  for (const name of options.only ?? Object.keys(results)) {
    const result = results[name];
    if (!result) throw new Error(`program '${program}' has no output '${name}' (outputs: ${Object.keys(results).join(', ')})`);
    const target = options.into?.[name];
    if (target) {
      checkOutputBuffer(program, name, target, result.shape);
      target.data.set(result.data);
    }
    delivered[name] = target ?? result;
  }
  return delivered;
}

/** Checks that a caller's output buffer has exactly the output's shape, naming the program and output. */
export function checkOutputBuffer(program: string, name: string, target: HostTensor, shape: readonly number[]): void {
  if (target.shape.length !== shape.length || target.shape.some((d, i) => d !== shape[i]) || target.data.length !== sizeOf(shape)) {
    throw new Error(
      `program '${program}': the buffer for output '${name}' is [${target.shape.join(', ')}], the output is [${shape.join(', ')}]`,
    );
  }
}

/** Options of `Backend.compile`. */
export interface CompileOptions {
  /** Shown in errors and profiles. */
  readonly name?: string;
  /**
   * Other threads of this process work while the program runs (e.g. decoding the next images), so
   * the backend should not hold the cores in between its own operations.
   */
  readonly sharesCores?: boolean;
}

/** What a backend plugin provides once initialised. */
export interface Backend {
  /** Specific runtime, e.g. 'tfjs-wasm' or 'onnxruntime-cpu'. */
  readonly name: string;
  /** Compiles (or, eagerly, wraps) a program for inputs of these shapes; -1 marks the batch axis. */
  compile(program: Program, inputShapes: Readonly<Record<string, Shape>>, options?: CompileOptions): Promise<CompiledProgram>;
  /** Frees the backend's runtime resources. */
  dispose?(): void | Promise<void>;
}

/** The eager half of the contract: kernels plus moving data and freeing intermediates. */
export interface EagerRuntime<T> {
  readonly name: string;
  readonly kernels: Partial<Kernels<T>>;
  /** Host tensor → runtime tensor. */
  upload(value: HostTensor): T;
  /** Runtime tensor → host tensor. */
  download(x: T): Promise<HostTensor>;
  /** Runs fn, freeing every tensor it created except those it returns. */
  tidy<R extends Record<string, T>>(fn: () => R): R;
  /** Frees one runtime tensor. */
  dispose(x: T): void;
}

/** Turns kernels into a Backend that runs programs eagerly; what a typical plugin needs. */
export function eagerBackend<T>(runtime: EagerRuntime<T>): Backend {
  const kernels = completeKernels(runtime.name, runtime.kernels);
  return {
    name: runtime.name,
    async compile(program, _inputShapes, options) {
      return {
        async run(inputs, runOptions) {
          const outputs = runtime.tidy(() => {
            const handles: Record<string, T> = {};
            for (const [key, value] of Object.entries(inputs)) handles[key] = runtime.upload(value);
            return program(kernels, handles);
          });
          const result: Record<string, HostTensor> = {};
          try {
            for (const [key, handle] of Object.entries(outputs)) result[key] = await runtime.download(handle);
          } catch (error) {
            throw new Error(`program '${options?.name ?? 'anonymous'}' on ${runtime.name}: ${(error as Error).message}`, { cause: error });
          } finally {
            for (const handle of Object.values(outputs)) runtime.dispose(handle);
          }
          return deliverOutputs(options?.name ?? 'anonymous', result, runOptions);
        },
        dispose() {},
      };
    },
  };
}

/** The shapes to compile for: batch-indexed inputs get a free (-1) leading dimension. */
export function inputShapesOf(inputs: Readonly<Record<string, HostTensor>>, batchInputs: readonly string[]): Record<string, Shape> {
  return Object.fromEntries(
    Object.entries(inputs).map(([name, value]) => [name, batchInputs.includes(name) ? [-1, ...value.shape.slice(1)] : value.shape]),
  );
}

/** Compiles, runs once, and frees a program. */
export async function runProgramOnce(
  backend: Backend,
  program: Program,
  inputs: Readonly<Record<string, HostTensor>>,
  batchInputs: readonly string[],
  name: string,
): Promise<Record<string, HostTensor>> {
  const compiled = await backend.compile(program, inputShapesOf(inputs, batchInputs), { name });
  try {
    return await compiled.run(inputs);
  } finally {
    compiled.dispose();
  }
}
