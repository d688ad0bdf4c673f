import type { Backend } from '../backend/backend.js';
import type { Classifier, LinearisedModel } from '../methods/linearised-model.js';
import { type Method, stepOutputBuffers } from '../methods/programs.js';
import type { HostTensor } from '../tensor.js';
import type { LossKind } from './losses.js';
import { compileStep, type TrainingData } from './trainer.js';

/**
 * Data-parallel training adds up per-sample terms: the loss and the gradients of a set of rows are
 * sums of those of its parts. Sums are kept in float64 and added in row order, so where the parts
 * were computed (here, or on other machines) changes nothing but rounding far below float32's.
 */
export interface GradientSums {
  /** Σ of the per-sample loss over the rows. */
  readonly loss: number;
  /** Σ of each trainable's gradient over the rows. */
  readonly grads: ReadonlyMap<string, Float64Array>;
}

/** Evaluates a method's loss and gradient sums over rows of its training data. */
export interface GradientEvaluator {
  /**
   * Sums over `rows` (indices into the training data) at `params`. Rows are taken in consecutive
   * chunks of at most `chunk`, each run as one batch; chunk boundaries are the same wherever it runs.
   */
  sums(params: ReadonlyMap<string, HostTensor>, rows: readonly number[], chunk: number): Promise<GradientSums>;
  /** Frees the compiled program and its buffers. */
  dispose(): void | Promise<void>;
}

/** What an evaluator is made for: the backend, the model and ω̄, the loss, the training data and the method. */
export interface EvaluatorRequest {
  readonly backend: Backend;
  readonly model: LinearisedModel;
  readonly omegaBar: Classifier;
  readonly loss: LossKind;
  readonly data: TrainingData;
  readonly method: Method;
}

/** Makes the evaluator of a request: in this process, or one whose sums come from other machines. */
export type GradientEvaluatorFactory = (request: EvaluatorRequest) => Promise<GradientEvaluator>;

/** `rows` in consecutive chunks of at most `chunk`. */
export function chunkRows(rows: readonly number[], chunk: number): (readonly number[])[] {
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`chunk size must be a positive integer, got ${chunk}`);
  const chunks: (readonly number[])[] = [];
  for (let start = 0; start < rows.length; start += chunk) chunks.push(rows.slice(start, start + chunk));
  return chunks;
}

/** Adds `part` into `total` (float64, in place). */
export function addSums(total: Map<string, Float64Array>, part: ReadonlyMap<string, ArrayLike<number>>): void {
  for (const [name, values] of part) {
    const sum = total.get(name);
    if (!sum) throw new Error(`gradient sums have no '${name}'`);
    if (sum.length !== values.length) throw new Error(`gradient sum of '${name}' has ${values.length} values, expected ${sum.length}`);
    for (let i = 0; i < sum.length; i++) sum[i] += values[i];
  }
}

/** Zero sums shaped like `params`. */
export function zeroSums(params: ReadonlyMap<string, HostTensor>): Map<string, Float64Array> {
  return new Map([...params].map(([name, value]) => [name, new Float64Array(value.data.length)]));
}

/** Evaluates in this process: the step program compiled once, run per chunk with batchScale 1 (sums). */
export async function localGradientEvaluator(request: EvaluatorRequest): Promise<GradientEvaluator> {
  let compiled: Awaited<ReturnType<typeof compileStep>> | undefined;
  return {
    async sums(params, rows, chunk) {
      compiled ??= await compileStep(request.backend, request.model, request.method, request.omegaBar, request.loss, request.data);
      // Buffers per call, so that concurrent calls (a worker running several jobs) do not share them.
      const { into, gradients } = stepOutputBuffers(params);
      const grads = zeroSums(params);
      let loss = 0;
      for (const part of chunkRows(rows, chunk)) {
        loss += await compiled.run(part, params, 1, into);
        addSums(grads, gradients);
      }
      return { loss, grads };
    },
    dispose: () => compiled?.dispose(),
  };
}
