import type { HostTensor } from '../tensor.js';
import { adamLeading, sgdLeading } from './optimisers-simd.js';

/**
 * Optimisers update host-side parameters in place from host-side gradients: the parameters are
 * the checkpointed source of truth, and the update is cheap next to the backend's passes.
 */
export interface OptimiserConfig {
  /** lbfgs: full-batch L-BFGS for the convex models (see trainLbfgs; it uses no learning rate); the others step per minibatch. */
  readonly kind: 'sgd' | 'adam' | 'lbfgs';
  readonly learningRate: number;
  /** SGD momentum (default 0.9). */
  readonly momentum?: number;
  /** Adam β1 (default 0.5, as in the paper) and β2 (default 0.999). */
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  /** L2 penalty added to the gradient, as PyTorch's weight_decay (default 0). */
  readonly weightDecay?: number;
  /** L-BFGS: history pairs kept (default 10) and the largest gradient entry at which it stops (default 1e-6). */
  readonly history?: number;
  readonly tolerance?: number;
}

/** The step schedule: halve the learning rate every `halveEvery` steps. */
export interface ScheduleConfig {
  /** Halve the learning rate every this many steps (the paper's step schedule); none when absent. */
  readonly halveEvery?: number;
}

/** Optimiser state per parameter name, serialisable into a checkpoint. */
export type OptimiserState = Record<string, Float32Array[]>;

/** The learning rate at `step`, after the schedule. */
export function learningRateAt(config: OptimiserConfig, schedule: ScheduleConfig | undefined, step: number): number {
  const halvings = schedule?.halveEvery ? Math.floor(step / schedule.halveEvery) : 0;
  return config.learningRate * 0.5 ** halvings;
}

/** Scales all gradients together so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradientNorm(grads: ReadonlyMap<string, Float32Array>, maxNorm: number): number {
  let squares = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) squares += g[i] * g[i];
  const norm = Math.sqrt(squares);
  if (norm > maxNorm) {
    const factor = maxNorm / norm;
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] *= factor;
  }
  return norm;
}

/** One optimiser step (the 1-based `step` drives Adam's bias correction). */
export function applyUpdate(
  config: OptimiserConfig,
  params: ReadonlyMap<string, HostTensor>,
  grads: ReadonlyMap<string, Float32Array>,
  state: OptimiserState,
  learningRate: number,
  step: number,
): void {
  const decay = config.weightDecay ?? 0;
  for (const [name, param] of params) {
    const grad = grads.get(name);
    if (!grad) throw new Error(`no gradient was computed for trainable parameter '${name}'`);
    const w = param.data;
    if (grad.length !== w.length) throw new Error(`gradient of '${name}' has ${grad.length} values, parameter has ${w.length}`);
    if (config.kind === 'lbfgs') {
      throw new Error('L-BFGS takes full-batch steps with a line search (trainLbfgs), not minibatch updates');
    } else if (config.kind === 'sgd') {
      const momentum = config.momentum ?? 0.9;
      state[name] ??= [new Float32Array(w.length)];
      const [velocity] = state[name];
      // WebAssembly SIMD takes the leading values, this loop (the same arithmetic) the rest.
      for (let i = sgdLeading(w, grad, velocity, { momentum, decay, learningRate }); i < w.length; i++) {
        velocity[i] = momentum * velocity[i] + grad[i] + decay * w[i];
        w[i] -= learningRate * velocity[i];
      }
    } else {
      state[name] ??= [new Float32Array(w.length), new Float32Array(w.length)];
      const [m, v] = state[name];
      // PyTorch's order of operations: the bias corrections fold into one step size and one divisor
      // (a fifth faster than correcting m and v per element, and the same formula as torch.optim.Adam).
      const beta1 = config.beta1 ?? 0.5;
      const beta2 = config.beta2 ?? 0.999;
      const adam = {
        decay,
        beta1,
        beta2,
        stepSize: learningRate / (1 - beta1 ** step),
        correction2Root: Math.sqrt(1 - beta2 ** step),
        epsilon: config.epsilon ?? 1e-8,
      };
      // WebAssembly SIMD takes the leading values, this loop (the same arithmetic) the rest.
      for (let i = adamLeading(w, grad, m, v, adam); i < w.length; i++) {
        const g = grad[i] + decay * w[i];
        // The moments as stored (float32), as the update reads them.
        const mi = Math.fround(beta1 * m[i] + (1 - beta1) * g);
        const vi = Math.fround(beta2 * v[i] + (1 - beta2) * g * g);
        m[i] = mi;
        v[i] = vi;
        w[i] -= (adam.stepSize * mi) / (Math.sqrt(vi) / adam.correction2Root + adam.epsilon);
      }
    }
  }
}
