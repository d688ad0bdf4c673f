import type { Shape } from '../ir/graph.js';
import type { HostTensor } from '../tensor.js';
import { completeKernels, type Kernels } from './kernels.js';

/**
 * A program is written once against the kernel contract and handed to a backend, which either runs
 * it eagerly on every call (TF.js) or traces it once into a graph (ONNX Runtime). Everything gradfeat
 * executes — trunk extraction, head features, each method's training step — is a Program.
 */
export type Program = <T>(k: Kernels<T>, inputs: Readonly<Record<string, T>>) => Record<string, T>;

/** A program compiled for fixed input shapes (batch free), ready to run many times. */
export interface CompiledProgram {
  /** Runs the program on host tensors; outputs by the keys the program returned. */
  run(inputs: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>>;
  /** Frees what compiling allocated; the program cannot run afterwards. */
  dispose(): void;
}

/** Options of `Backend.compile`. */
export interface CompileOptions {
  /** Shown in errors and profiles. */
  readonly name?: string;
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
        async run(inputs) {
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
          return result;
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
