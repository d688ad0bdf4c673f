import type { Method } from '../methods/programs.js';
import { LBFGS_HISTORY, LBFGS_TOLERANCE } from './lbfgs.js';
import type { TrainConfig } from './trainer.js';

/** An optimiser and its own settings (its learning rate and weight decay are the method's). */
export type OptimiserSettings =
  | { readonly kind: 'sgd'; readonly momentum: number }
  | { readonly kind: 'adam'; readonly beta1: number; readonly beta2: number; readonly epsilon: number }
  // Full-batch L-BFGS, for the convex models (activation, gradient, full): history pairs and gradient tolerance.
  | { readonly kind: 'lbfgs'; readonly history: number; readonly tolerance: number };

/** One method's training settings as a run states them: the CLI's run configs, the docs page's settings. */
export interface MethodTraining {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** L2 penalty added to the gradient. */
  readonly weightDecay: number;
  /** Halve the learning rate every this many steps (the paper's step schedule); none when absent. */
  readonly halveEvery?: number;
  /** Clip the global gradient norm to this value; none when absent. */
  readonly clipNorm?: number;
  readonly optimiser: OptimiserSettings;
}

/** The paper's optimisers: Adam (β1 = 0.5, β2 = 0.999) for the linearised models, SGD with momentum 0.9 for the linear probe. */
export const OPTIMISER_DEFAULTS: { readonly [K in OptimiserSettings['kind']]: Extract<OptimiserSettings, { kind: K }> } = {
  sgd: { kind: 'sgd', momentum: 0.9 },
  adam: { kind: 'adam', beta1: 0.5, beta2: 0.999, epsilon: 1e-8 },
  lbfgs: { kind: 'lbfgs', history: LBFGS_HISTORY, tolerance: LBFGS_TOLERANCE },
};

const linearisedTraining: MethodTraining = {
  epochs: 10,
  batchSize: 64,
  learningRate: 1e-3,
  weightDecay: 0,
  optimiser: OPTIMISER_DEFAULTS.adam,
};

/** Each method's default training settings (the CLI's and the docs page's). */
export const DEFAULT_TRAINING: Readonly<Record<Method, MethodTraining>> = {
  activation: { ...linearisedTraining, learningRate: 1e-2, optimiser: OPTIMISER_DEFAULTS.sgd },
  gradient: linearisedTraining,
  full: linearisedTraining,
  // Fine-tuning trains like the linearised models, so the comparison differs only in the model.
  finetune: linearisedTraining,
};

/** The trainer's settings for one method (computing each step's gradient in one part). */
export function trainConfigOf(training: MethodTraining, seed: number): TrainConfig {
  const { epochs, batchSize, learningRate, weightDecay, halveEvery, clipNorm, optimiser } = training;
  return {
    epochs,
    batchSize,
    seed,
    optimiser: { ...optimiser, learningRate, weightDecay },
    schedule: halveEvery === undefined ? undefined : { halveEvery },
    clipNorm,
  };
}
