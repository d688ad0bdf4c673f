import { describe, expect, it } from 'vitest';
import {
  chunkRows,
  createReferenceBackend,
  type GradientEvaluatorFactory,
  initialTrainState,
  linearise,
  localGradientEvaluator,
  memorySource,
  normalTensor,
  oneHot,
  Rng,
  relativeError,
  smallCnn,
  type TrainConfig,
  type TrainState,
  trainMethod,
  zeroClassifier,
} from '../src/index.js';

const backend = createReferenceBackend();
const model = linearise(smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 }), { cut: 'block2' });
const rng = new Rng(4);
const COUNT = 26;
const cut = normalTensor(rng, [COUNT, ...model.cutShape]);
const labels = Array.from({ length: COUNT }, (_, i) => (i * 7) % 4);
const data = { inputs: memorySource(cut), targets: oneHot(labels, 4) };
const omegaBar = model.sourceClassifier;
const flat = (state: TrainState) => Float32Array.from([...state.params.values()].flatMap((t) => [...t.data]));

describe('data-parallel gradient sums', () => {
  it('the sums over chunks of rows are the mean gradient of the step program times the row count', async () => {
    const evaluator = await localGradientEvaluator({ backend, model, omegaBar, loss: 'softmax-ce', data, method: 'full' });
    const state = initialTrainState(model, 'full', omegaBar, 0);
    const rows = [3, 1, 4, 15, 9, 2, 6, 5];
    const whole = await evaluator.sums(state.params, rows, 8);
    const chunked = await evaluator.sums(state.params, rows, 3);
    expect(chunkRows(rows, 3)).toEqual([
      [3, 1, 4],
      [15, 9, 2],
      [6, 5],
    ]);
    expect(Math.abs(chunked.loss - whole.loss) / whole.loss).toBeLessThan(1e-6);
    for (const [name, sum] of whole.grads) expect(relativeError(chunked.grads.get(name)!, sum).relative, name).toBeLessThan(1e-6);
    await evaluator.dispose();
  });

  it('Adam on batches summed from three parts ends where whole batches do (float64 reference: 1e-5 relative)', async () => {
    const config: TrainConfig = { epochs: 2, batchSize: 8, seed: 3, optimiser: { kind: 'adam', learningRate: 0.01 } };
    const whole = await trainMethod(backend, model, omegaBar, 'softmax-ce', data, config, initialTrainState(model, 'full', omegaBar, 3));
    let evaluated = 0;
    const counting: GradientEvaluatorFactory = async (request) => {
      const local = await localGradientEvaluator(request);
      return {
        sums: (params, rows, chunk) => {
          evaluated++;
          expect(chunk).toBe(Math.ceil(rows.length / 3));
          return local.sums(params, rows, chunk);
        },
        dispose: local.dispose,
      };
    };
    const parts = await trainMethod(
      backend,
      model,
      omegaBar,
      'softmax-ce',
      data,
      { ...config, gradientParts: 3 },
      initialTrainState(model, 'full', omegaBar, 3),
      { evaluator: counting },
    );
    expect(evaluated).toBe(whole.step);
    expect(parts.step).toBe(whole.step);
    expect(relativeError(flat(parts), flat(whole)).relative).toBeLessThan(1e-5);
  });
});

describe('L-BFGS', () => {
  const config: TrainConfig = {
    epochs: 40,
    batchSize: 8,
    seed: 0,
    optimiser: { kind: 'lbfgs', learningRate: 0, weightDecay: 1e-3, tolerance: 1e-5 },
  };
  const activation = {
    inputs: memorySource(normalTensor(new Rng(7), [COUNT, model.featureCount])),
    targets: oneHot(labels, 4),
  };
  const start = () => initialTrainState(model, 'activation', zeroClassifier(4, model.featureCount), 0);

  it('minimises the linear probe to its tolerance, decreasing the loss at every iteration', async () => {
    const state = await trainMethod(backend, model, zeroClassifier(4, model.featureCount), 'softmax-ce', activation, config, start());
    const losses = state.history.map((record) => record.loss);
    expect(losses.length).toBeGreaterThan(3);
    expect(losses.length).toBeLessThan(40);
    // The objective (with λ/2·‖w‖²) decreases at every iteration; the recorded mean loss may rise by the decay term's change.
    for (let i = 1; i < losses.length; i++) expect(losses[i]).toBeLessThan(losses[i - 1] + 1e-5);
    expect(losses.at(-1)).toBeLessThan(Math.log(4) - 0.2);
    const evaluator = await localGradientEvaluator({
      backend,
      model,
      omegaBar: zeroClassifier(4, model.featureCount),
      loss: 'softmax-ce',
      data: activation,
      method: 'activation',
    });
    const sums = await evaluator.sums(state.params, [...Array(COUNT).keys()], 8);
    for (const [name, sum] of sums.grads) {
      const w = state.params.get(name)!.data;
      const largest = Math.max(...sum.map((g, i) => Math.abs(g / COUNT + 1e-3 * w[i])));
      expect(largest, name).toBeLessThan(2e-5);
    }
  });

  it('stopped after any iteration and resumed from its checkpoint, ends bit for bit as an uninterrupted run', async () => {
    const omega = zeroClassifier(4, model.featureCount);
    const straight = await trainMethod(backend, model, omega, 'softmax-ce', activation, config, start());
    let saved: TrainState | undefined;
    const stop = new Error('stopped');
    await expect(
      trainMethod(backend, model, omega, 'softmax-ce', activation, config, start(), {
        checkpointEvery: 3,
        checkpoint: async (state) => {
          saved = structuredClone(state);
          throw stop;
        },
      }),
    ).rejects.toBe(stop);
    expect(saved?.step).toBe(3);
    const resumed = await trainMethod(backend, model, omega, 'softmax-ce', activation, config, saved as TrainState);
    expect(resumed.step).toBe(straight.step);
    expect(flat(resumed)).toEqual(flat(straight));
  });

  it('refuses fine-tuning, which is not convex', async () => {
    const state = initialTrainState(model, 'finetune', omegaBar, 0);
    await expect(trainMethod(backend, model, omegaBar, 'softmax-ce', data, config, state)).rejects.toThrow(
      "L-BFGS needs a convex model (activation, gradient or full); train 'finetune' with adam or sgd",
    );
  });
});
