import type { HostTensor } from '../tensor.js';
import type { GradientEvaluator } from './gradient-sums.js';
import type { TrainConfig, TrainHooks, TrainState } from './trainer.js';

/** Defaults of the L-BFGS optimiser: pairs of (step, gradient change) kept, and the gradient tolerance. */
export const LBFGS_HISTORY = 10;
/** Stops when the gradient's largest entry is below this. */
export const LBFGS_TOLERANCE = 1e-6;
/** Armijo's sufficient-decrease constant and the most halvings of a step before giving up. */
const SUFFICIENT_DECREASE = 1e-4;
const MAX_HALVINGS = 30;

/**
 * Full-batch L-BFGS (two-loop recursion, backtracking line search to Armijo's condition) on the mean
 * loss plus weight decay λ/2·‖w‖². For the convex models (activation, gradient, full: each is linear in
 * its parameters, as logistic regression is) it converges to their optimum, one evaluation being one
 * pass of gradient sums over the whole training set, which workers on other machines can share.
 * `epochs` is the most iterations; it stops earlier once no gradient entry exceeds the tolerance. The
 * learning rate is not used: the line search starts from the quasi-Newton step.
 *
 * Every quantity carried from one iteration to the next is float32 (the parameters and the history
 * pairs) or re-evaluated from them, so a run resumed from a checkpoint continues bit for bit.
 */
export async function trainLbfgs(
  evaluator: GradientEvaluator,
  count: number,
  config: TrainConfig,
  state: TrainState,
  hooks: TrainHooks,
): Promise<TrainState> {
  const { optimiser } = config;
  if (state.method === 'finetune') {
    throw new Error("L-BFGS needs a convex model (activation, gradient or full); train 'finetune' with adam or sgd");
  }
  if (config.clipNorm !== undefined || config.schedule?.halveEvery !== undefined) {
    throw new Error('L-BFGS takes no gradient clipping or learning-rate schedule; its line search sets each step');
  }
  const decay = optimiser.weightDecay ?? 0;
  const memory = optimiser.history ?? LBFGS_HISTORY;
  const tolerance = optimiser.tolerance ?? LBFGS_TOLERANCE;
  const layout = flatLayout(state.params);
  const rows = Array.from({ length: count }, (_, i) => i);
  const history = readHistory(layout, state);
  let started = performance.now();
  const tick = () => {
    const now = performance.now();
    state.seconds += (now - started) / 1000;
    started = now;
  };

  const evaluate = async (x: Float32Array) => {
    const sums = await evaluator.sums(layout.tensors(x), rows, config.batchSize);
    const gradient = new Float64Array(layout.size);
    for (const [name, offset, length] of layout.entries) {
      const sum = sums.grads.get(name);
      if (!sum) throw new Error(`no gradient was computed for trainable parameter '${name}'`);
      for (let i = 0; i < length; i++) gradient[offset + i] = sum[i] / count + decay * x[offset + i];
    }
    const meanLoss = sums.loss / count;
    if (!Number.isFinite(meanLoss)) throw new Error(`${state.method}: loss became ${meanLoss} at L-BFGS iteration ${state.step}`);
    return { objective: meanLoss + (decay / 2) * dot(x, x), meanLoss, gradient };
  };

  let x = layout.flatten(state.params);
  let current = await evaluate(x);
  while (state.step < config.epochs && maxAbs(current.gradient) > tolerance) {
    let direction = searchDirection(current.gradient, history);
    let slope = dot(current.gradient, direction);
    if (!(slope < 0)) {
      // Not a descent direction (the history went stale): start again from steepest descent.
      history.length = 0;
      direction = current.gradient.map((g) => -g);
      slope = dot(current.gradient, direction);
    }
    // The quasi-Newton step, or without history one scaled to the gradient (as PyTorch's L-BFGS starts).
    let stepSize = history.length === 0 ? Math.min(1, 1 / sumAbs(current.gradient)) : 1;
    let next: { x: Float32Array; value: Awaited<ReturnType<typeof evaluate>> } | undefined;
    for (let halvings = 0; halvings <= MAX_HALVINGS; halvings++, stepSize /= 2) {
      const candidate = Float32Array.from(x, (value, i) => value + stepSize * direction[i]);
      const value = await evaluate(candidate);
      if (value.objective <= current.objective + SUFFICIENT_DECREASE * stepSize * slope) {
        next = { x: candidate, value };
        break;
      }
    }
    // No decrease at any step size: the optimum is reached to float32 precision.
    if (!next) break;
    const s = Float32Array.from(next.x, (value, i) => value - x[i]);
    const y = Float32Array.from(next.value.gradient, (value, i) => value - current.gradient[i]);
    if (dot(y, s) > 1e-10 * dot(y, y)) {
      history.push({ s, y });
      if (history.length > memory) history.shift();
    }
    x = next.x;
    current = next.value;
    layout.assign(x, state.params);
    state.step += 1;
    state.epoch = state.step;
    state.optimiser = writeHistory(layout, history);
    const record = { step: state.step, epoch: state.epoch, loss: current.meanLoss };
    state.history.push(record);
    hooks.onStep?.({ ...record, totalSteps: config.epochs, learningRate: stepSize });
    if (hooks.checkpoint && hooks.checkpointEvery && state.step % hooks.checkpointEvery === 0) {
      tick();
      await hooks.checkpoint(state);
    }
  }
  tick();
  await hooks.checkpoint?.(state);
  return state;
}

interface Pair {
  readonly s: Float32Array;
  readonly y: Float32Array;
}

/** −H·g by the two-loop recursion over the history pairs, scaled by sᵀy/yᵀy of the newest. */
function searchDirection(gradient: Float64Array, history: readonly Pair[]): Float64Array {
  const q = Float64Array.from(gradient);
  const alphas: number[] = [];
  for (let k = history.length - 1; k >= 0; k--) {
    const { s, y } = history[k];
    const alpha = dot(s, q) / dot(y, s);
    alphas[k] = alpha;
    for (let i = 0; i < q.length; i++) q[i] -= alpha * y[i];
  }
  const newest = history.at(-1);
  const gamma = newest ? dot(newest.s, newest.y) / dot(newest.y, newest.y) : 1;
  for (let i = 0; i < q.length; i++) q[i] *= gamma;
  for (let k = 0; k < history.length; k++) {
    const { s, y } = history[k];
    const beta = dot(y, q) / dot(y, s);
    for (let i = 0; i < q.length; i++) q[i] += s[i] * (alphas[k] - beta);
  }
  return q.map((value) => -value);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < a.length; i++) total += a[i] * b[i];
  return total;
}

function maxAbs(values: Float64Array): number {
  let largest = 0;
  for (const value of values) largest = Math.max(largest, Math.abs(value));
  return largest;
}

function sumAbs(values: Float64Array): number {
  let total = 0;
  for (const value of values) total += Math.abs(value);
  return total;
}

/** The trainables as one vector, in their order in the state. */
function flatLayout(params: ReadonlyMap<string, HostTensor>) {
  const entries: [string, number, number][] = [];
  let size = 0;
  for (const [name, value] of params) {
    entries.push([name, size, value.data.length]);
    size += value.data.length;
  }
  const shapes = new Map([...params].map(([name, value]) => [name, value.shape]));
  return {
    entries,
    size,
    flatten(values: ReadonlyMap<string, HostTensor>): Float32Array {
      const flat = new Float32Array(size);
      for (const [name, offset] of entries) flat.set((values.get(name) as HostTensor).data, offset);
      return flat;
    },
    tensors(flat: Float32Array): Map<string, HostTensor> {
      return new Map(
        entries.map(([name, offset, length]) => [name, { shape: shapes.get(name)!, data: flat.subarray(offset, offset + length) }]),
      );
    },
    assign(flat: Float32Array, values: Map<string, HostTensor>): void {
      for (const [name, offset, length] of entries) (values.get(name) as HostTensor).data.set(flat.subarray(offset, offset + length));
    },
  };
}

type Layout = ReturnType<typeof flatLayout>;

/** The history pairs as optimiser state: per parameter, its slices of s₀…s_k then of y₀…y_k. */
function writeHistory(layout: Layout, history: readonly Pair[]): Record<string, Float32Array[]> {
  return Object.fromEntries(
    layout.entries.map(([name, offset, length]) => [
      name,
      [...history.map(({ s }) => s.subarray(offset, offset + length)), ...history.map(({ y }) => y.subarray(offset, offset + length))],
    ]),
  );
}

function readHistory(layout: Layout, state: TrainState): Pair[] {
  const slots = layout.entries.map(([name]) => state.optimiser[name]?.length ?? 0);
  const pairs = (slots[0] ?? 0) / 2;
  if (slots.some((count) => count !== 2 * pairs)) {
    throw new Error(`the '${state.method}' checkpoint's optimiser state is not an L-BFGS history (was it trained with another optimiser?)`);
  }
  return Array.from({ length: pairs }, (_, k) => {
    const s = new Float32Array(layout.size);
    const y = new Float32Array(layout.size);
    for (const [name, offset] of layout.entries) {
      s.set(state.optimiser[name][k], offset);
      y.set(state.optimiser[name][pairs + k], offset);
    }
    return { s, y };
  });
}
