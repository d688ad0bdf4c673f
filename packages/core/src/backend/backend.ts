import { BATCH, type Shape } from '../ir/graph.js';
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

/**
 * A program's named inputs and the shape each must have, BATCH (-1) marking the batch axis (axis 0:
 * any size, the same in every batched input of a run). Every backend checks each run's feeds against
 * it (`checkFeeds`), eager or traced, as ONNX Runtime does.
 */
export type InputSignature = Readonly<Record<string, Shape>>;

/**
 * A program's named outputs and the shape each has, BATCH (-1) standing for the batch size of the
 * run's batched inputs. Every backend checks what the program returns against it (`checkOutputs`).
 */
export type OutputSignature = Readonly<Record<string, Shape>>;

/**
 * A program with its typed signature: what `Backend.compile` takes. gradfeat's program builders
 * (`forwardProgram`, `trainStepProgram`, …) return one, so no caller restates a program's input
 * shapes or output names.
 */
export interface SignedProgram {
  readonly program: Program;
  readonly inputs: InputSignature;
  readonly outputs: OutputSignature;
}

/** A signature's shape as text, the batch axis shown as N, e.g. '[N, 3, 32, 32]'. */
export function formatSignatureShape(shape: readonly number[]): string {
  return `[${shape.map((d) => (d === BATCH ? 'N' : String(d))).join(', ')}]`;
}

/**
 * Refuses a signature a program cannot be compiled for: sizes that are not positive integers, BATCH
 * anywhere but an input's axis 0, an output with BATCH when no input is batched, no outputs.
 */
export function checkSignature(program: string, signed: Pick<SignedProgram, 'inputs' | 'outputs'>): void {
  for (const [name, shape] of Object.entries(signed.inputs)) {
    if (!shape.every((d, axis) => isSize(d) || (d === BATCH && axis === 0))) {
      throw new Error(
        `program '${program}': input '${name}' has shape ${formatSignatureShape(shape)}; sizes must be positive, with -1 allowed only for the batch (axis 0)`,
      );
    }
  }
  const batched = Object.values(signed.inputs).some((shape) => shape[0] === BATCH);
  for (const [name, shape] of Object.entries(signed.outputs)) {
    if (!shape.every((d) => isSize(d) || (d === BATCH && batched))) {
      throw new Error(
        `program '${program}': output '${name}' has shape ${formatSignatureShape(shape)}; sizes must be positive, with -1 (the batch) only when an input is batched`,
      );
    }
  }
  if (Object.keys(signed.outputs).length === 0) throw new Error(`program '${program}' has no outputs in its signature`);
}

function isSize(d: number): boolean {
  return Number.isInteger(d) && d > 0;
}

/**
 * Refuses feeds that do not fit a compiled program's signature: an input it does not have, one it
 * needs and did not get, a shape other than the compiled one, batched inputs of different batch
 * sizes. Errors name the program, the input, the expected and the received shape. Returns the
 * run's batch size (undefined when no input is batched), what `checkOutputs` reads BATCH as.
 */
export function checkFeeds(program: string, signature: InputSignature, feeds: Readonly<Record<string, HostTensor>>): number | undefined {
  const unknown = Object.keys(feeds).filter((name) => !(name in signature));
  if (unknown.length > 0) {
    throw new Error(
      `program '${program}' has no input ${unknown.map((name) => `'${name}'`).join(', ')} (inputs: ${Object.keys(signature).join(', ')})`,
    );
  }
  let batch: { size: number; input: string } | undefined;
  for (const [name, expected] of Object.entries(signature)) {
    const value = feeds[name];
    if (!value) throw new Error(`program '${program}' needs input '${name}' of shape ${formatSignatureShape(expected)}`);
    const fits = value.shape.length === expected.length && expected.every((d, axis) => d === value.shape[axis] || d === BATCH);
    if (!fits) {
      throw new Error(
        `program '${program}': input '${name}' has shape [${value.shape.join(', ')}], expected ${formatSignatureShape(expected)}`,
      );
    }
    if (value.data.length !== sizeOf(value.shape)) {
      throw new Error(`program '${program}': input '${name}' has ${value.data.length} values for its shape [${value.shape.join(', ')}]`);
    }
    if (expected[0] === BATCH) {
      if (batch && batch.size !== value.shape[0]) {
        throw new Error(`program '${program}': input '${name}' has batch size ${value.shape[0]} but '${batch.input}' has ${batch.size}`);
      }
      batch = { size: value.shape[0], input: name };
    }
  }
  return batch?.size;
}

/**
 * Refuses what a program returned when it does not fit the signature: an output it does not list,
 * one it lists and the program did not return, a shape other than the declared one. BATCH is read as
 * `batch`, the run's batch size; a tracing backend passes none and compares symbolic shapes, whose
 * batch axis is BATCH itself. Errors name the program, the output, the expected and the actual shape.
 */
export function checkOutputs(
  program: string,
  signature: OutputSignature,
  shapes: Readonly<Record<string, readonly number[]>>,
  batch?: number,
): void {
  const declared = Object.keys(signature).join(', ');
  const undeclared = Object.keys(shapes).filter((name) => !(name in signature));
  if (undeclared.length > 0) {
    throw new Error(
      `program '${program}' returned ${undeclared.map((name) => `'${name}'`).join(', ')}, which its signature does not list (outputs: ${declared})`,
    );
  }
  for (const [name, expected] of Object.entries(signature)) {
    const shape = shapes[name];
    if (!shape) throw new Error(`program '${program}' did not return its output '${name}' of shape ${formatSignatureShape(expected)}`);
    const fits = shape.length === expected.length && expected.every((d, axis) => (d === BATCH ? (batch ?? BATCH) : d) === shape[axis]);
    if (!fits) {
      throw new Error(
        `program '${program}': output '${name}' has shape ${formatSignatureShape(shape)}, expected ${formatSignatureShape(expected)}${batch !== undefined && expected.includes(BATCH) ? ` with N = ${batch}` : ''}`,
      );
    }
  }
}

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
  /**
   * Compiles (or, eagerly, wraps) a program for its signature (checkSignature); every run's feeds
   * (checkFeeds) and the program's outputs (checkOutputs) are checked against it.
   */
  compile(program: SignedProgram, options?: CompileOptions): Promise<CompiledProgram>;
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
    async compile(signed, options) {
      const name = options?.name ?? 'anonymous';
      checkSignature(name, signed);
      return {
        async run(inputs, runOptions) {
          const batch = checkFeeds(name, signed.inputs, inputs);
          const outputs = runtime.tidy(() => {
            const handles: Record<string, T> = {};
            for (const [key, value] of Object.entries(inputs)) handles[key] = runtime.upload(value);
            return signed.program(kernels, handles);
          });
          const result: Record<string, HostTensor> = {};
          try {
            for (const [key, handle] of Object.entries(outputs)) result[key] = await runtime.download(handle);
          } catch (error) {
            throw new Error(`program '${name}' on ${runtime.name}: ${(error as Error).message}`, { cause: error });
          } finally {
            for (const handle of Object.values(outputs)) runtime.dispose(handle);
          }
          checkOutputs(name, signed.outputs, Object.fromEntries(Object.entries(result).map(([key, value]) => [key, value.shape])), batch);
          return deliverOutputs(name, result, runOptions);
        },
        dispose() {},
      };
    },
  };
}

/** The signature of these inputs: batch-indexed ones get a free (BATCH) leading dimension. */
export function inputShapesOf(inputs: Readonly<Record<string, HostTensor>>, batchInputs: readonly string[]): Record<string, Shape> {
  return Object.fromEntries(
    Object.entries(inputs).map(([name, value]) => [name, batchInputs.includes(name) ? [BATCH, ...value.shape.slice(1)] : value.shape]),
  );
}

/** Compiles, runs once, and frees a program. */
export async function runProgramOnce(
  backend: Backend,
  program: SignedProgram,
  inputs: Readonly<Record<string, HostTensor>>,
  name: string,
): Promise<Record<string, HostTensor>> {
  const compiled = await backend.compile(program, { name });
  try {
    return await compiled.run(inputs);
  } finally {
    compiled.dispose();
  }
}
