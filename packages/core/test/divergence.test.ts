import { describe, expect, it } from 'vitest';
import {
  allFinite,
  createReferenceBackend,
  DivergenceMonitor,
  initialTrainState,
  linearise,
  memorySource,
  Rng,
  smallCnn,
  type TrainConfig,
  TrainingDiverged,
  type TrainState,
  trainMethod,
} from '../src/index.js';

/** The full model on 40 random cut values of a small CNN, 4 classes, batches of 5 (8 steps an epoch). */
function problem(seed = 4) {
  const network = smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 });
  const model = linearise(network, { cut: 'block2' });
  const rng = new Rng(seed);
  const count = 40;
  const cut = { shape: [count, ...model.cutShape], data: Float32Array.from({ length: count * 5 * 3 * 3 }, () => rng.normal()) };
  const targets = new Float32Array(count * 4);
  for (let i = 0; i < count; i++) targets[i * 4 + rng.int(4)] = 1;
  return { model, data: { inputs: memorySource(cut), targets: { shape: [count, 4], data: targets } } };
}

describe('divergence', () => {
  const backend = createReferenceBackend();

  it('stops a run whose loss stays far above its initial value, naming the step, and checkpoints only good states', async () => {
    const { model, data } = problem();
    const config: TrainConfig = { epochs: 12, batchSize: 5, seed: 1, optimiser: { kind: 'sgd', learningRate: 1e3, momentum: 0.9 } };
    const omega = model.sourceClassifier;
    const saved: number[] = [];
    const run = trainMethod(backend, model, omega, 'softmax-ce', data, config, initialTrainState(model, 'full', omega, 1), {
      checkpoint: async (state) => {
        saved.push(state.step);
      },
      checkpointEvery: 1,
    });
    const error = (await run.catch((e: unknown) => e)) as TrainingDiverged;
    expect(error).toBeInstanceOf(TrainingDiverged);
    expect(error.message).toMatch(
      /^full: training diverged at step 10: the loss \(\S+\) has been above 10 × its initial value \(1\.66\d*\) in 8 of the last 10 steps/,
    );
    expect(error.tensor).toBe('loss');
    // The loss blew up at step 2 (986 from 1.66): only the state after step 1 was saved, and it is named as the one kept.
    expect(saved).toEqual([1]);
    expect(error.lastGoodStep).toBe(1);
    expect(error.message).toContain('the last good checkpoint (step 1) is kept; resume from it with a lower learning rate');
  });

  it('stops at the first step whose gradient is not finite, naming the tensor', () => {
    const monitor = new DivergenceMonitor('gradient', 100, []);
    monitor.observe(1, 2.3, new Map([['w2.conv.weight', Float32Array.of(0.1, -0.2)]]));
    expect(monitor.healthy).toBe(true);
    expect(() =>
      monitor.observe(
        2,
        2.2,
        new Map([
          ['w2.conv.weight', Float32Array.of(0.1, Number.POSITIVE_INFINITY)],
          ['w1.weight', Float32Array.of(Number.NaN)],
        ]),
      ),
    ).toThrow(
      /^gradient: training diverged at step 2: the gradient of 'w2\.conv\.weight' is not finite; no checkpoint was saved before it, so --resume starts the method again/,
    );
    expect(() => new DivergenceMonitor('full', 100, []).observe(1, Number.NaN, new Map())).toThrow(
      'full: training diverged at step 1: the loss is NaN',
    );
  });

  it('finds a non-finite gradient value wherever it is, and takes the largest floats, −0 and denormals as finite', () => {
    for (let length = 1; length <= 9; length++) {
      const values = Float32Array.from({ length }, (_, i) => [3.4e38, -3.4e38, -0, 1e-45, 0.5][i % 5]);
      expect(allFinite(values), `length ${length}`).toBe(true);
      for (let at = 0; at < length; at++) {
        for (const bad of [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN]) {
          const copy = values.slice();
          copy[at] = bad;
          expect(allFinite(copy), `${bad} at ${at} of ${length}`).toBe(false);
        }
      }
    }
    expect(allFinite(new Float32Array(0))).toBe(true);
  });

  it('tolerates a short spike, takes the initial loss from a resumed history, and counts a run that ends blown up as diverged', () => {
    const history = [{ step: 1, epoch: 0, loss: 0.5 }];
    const monitor = new DivergenceMonitor('full', 100, history);
    const grads = new Map<string, Float32Array>();
    // Above 10 × max(0.5, 1) = 10 in 7 of a 10-step window (a tenth of the run): a spike, not divergence.
    for (let step = 2; step < 9; step++) monitor.observe(step, 50, grads);
    for (let step = 9; step < 19; step++) {
      expect(monitor.healthy).toBe(false);
      monitor.observe(step, 0.4, grads);
    }
    expect(monitor.healthy).toBe(true);
    monitor.observe(19, 60, grads);
    expect(() => monitor.finish()).toThrow(
      'full: training diverged at step 19: the loss (60) was above 10 × its initial value (0.5) when the run ended; the last good checkpoint (step 1) is kept',
    );
  });

  it('leaves a healthy run alone: the same numbers as before, every checkpoint saved', async () => {
    const { model, data } = problem();
    const config: TrainConfig = { epochs: 2, batchSize: 5, seed: 1, optimiser: { kind: 'adam', learningRate: 0.01 } };
    const saved: TrainState[] = [];
    const state = await trainMethod(
      backend,
      model,
      model.sourceClassifier,
      'softmax-ce',
      data,
      config,
      initialTrainState(model, 'full', model.sourceClassifier, 1),
      {
        checkpoint: async (s) => {
          saved.push(structuredClone(s));
        },
        checkpointEvery: 4,
      },
    );
    expect(saved.map((s) => s.step)).toEqual([4, 8, 12, 16, 16]);
    expect(state.history.at(-1)?.loss).toBeLessThan(state.history[0].loss);
  });
});
