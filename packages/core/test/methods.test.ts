import { describe, expect, it } from 'vitest';
import { describeFixtureCheck } from '../../../test-support/fixture-check.js';
import {
  BATCH_SCALE,
  type Classifier,
  classifierOf,
  compareMethods,
  computeFeatures,
  createReferenceBackend,
  effectiveParams,
  FEATURES,
  gradName,
  type HostTensor,
  INPUT,
  initialParams,
  initialTrainState,
  type LinearisedModel,
  LOGITS,
  LOSS,
  type LossKind,
  linearisationPointProgram,
  linearise,
  logitsProgram,
  MASK,
  METHODS,
  type Method,
  memorySource,
  normalTensor,
  pointResiduals,
  predict,
  Rng,
  reinitialise,
  relativeError,
  residualInput,
  runProgramOnce,
  smallCnn,
  TANGENT,
  TARGETS,
  type TrainConfig,
  tangentProgram,
  theta2Name,
  trainMethod,
  trainStepProgram,
  w2Name,
} from '../src/index.js';

const backend = createReferenceBackend();

describeFixtureCheck('the float64 reference backend', () => backend);

/** A tiny pre-trained-looking network: 3 conv blocks, cut after the second. */
function tinyModel(parametrisation: 'ntk' | 'standard' = 'ntk'): LinearisedModel {
  const network = smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 });
  return linearise(network, { cut: 'block2', parametrisation });
}

function batch(model: LinearisedModel, method: Method, rng: Rng, n = 5, classes = 4) {
  const targets = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) targets[i * classes + rng.int(classes)] = 1;
  const shape = method === 'activation' ? [n, model.featureCount] : [n, ...model.cutShape];
  return { inputs: normalTensor(rng, shape), targets: { shape: [n, classes], data: targets } as HostTensor };
}

function omegaFor(model: LinearisedModel, rng: Rng): Classifier {
  return { weight: normalTensor(rng, model.sourceClassifier.weight.shape), bias: normalTensor(rng, model.sourceClassifier.bias.shape) };
}

async function lossAndGrads(
  model: LinearisedModel,
  method: Method,
  omega: Classifier,
  params: Map<string, HostTensor>,
  data: ReturnType<typeof batch>,
  loss: LossKind,
  mask?: HostTensor,
) {
  const inputs: Record<string, HostTensor> = {
    [INPUT]: data.inputs,
    [TARGETS]: data.targets,
    [BATCH_SCALE]: { shape: [1], data: Float32Array.of(1 / data.inputs.shape[0]) },
    ...Object.fromEntries(params),
    ...(mask ? { [MASK]: mask } : {}),
  };
  return runProgramOnce(backend, trainStepProgram(model, method, omega, loss, { masked: mask !== undefined }), inputs, method);
}

describe('the four methods', () => {
  it('at initialisation the gradient model is 0 and the full model equals the linear probe with ω̄', async () => {
    const model = tinyModel();
    const rng = new Rng(1);
    const omega = omegaFor(model, rng);
    const cut = normalTensor(rng, [3, ...model.cutShape]);
    const gradientParams = Object.fromEntries(initialParams(model, 'gradient', omega));
    const gradient = await runProgramOnce(backend, logitsProgram(model, 'gradient', omega), { [INPUT]: cut, ...gradientParams }, 'g');
    expect(Math.max(...gradient[LOGITS].data.map(Math.abs))).toBe(0);
    const full = await runProgramOnce(
      backend,
      logitsProgram(model, 'full', omega),
      { [INPUT]: cut, ...Object.fromEntries(initialParams(model, 'full', omega)) },
      'f',
    );
    const finetune = await runProgramOnce(
      backend,
      logitsProgram(model, 'finetune', omega),
      { [INPUT]: cut, ...Object.fromEntries(initialParams(model, 'finetune', omega)) },
      'ft',
    );
    expect(relativeError(full[LOGITS].data, finetune[LOGITS].data).relative).toBeLessThan(1e-7);
  });

  it('w1 starts as a copy of ω̄, never an alias', () => {
    const model = tinyModel();
    const omega = omegaFor(model, new Rng(2));
    const params = initialParams(model, 'full', omega);
    const w1 = params.get('w1.weight') as HostTensor;
    expect(w1.data).toEqual(omega.weight.data);
    w1.data[0] += 1;
    expect(w1.data[0]).not.toBe(omega.weight.data[0]);
  });

  it('the NTK direction w2 acts as the standard direction s ⊙ w2 (s = √(1/C_out) for weights, √0.1 for biases)', async () => {
    const ntk = tinyModel('ntk');
    const standard = tinyModel('standard');
    const rng = new Rng(3);
    const cut = normalTensor(rng, [2, ...ntk.cutShape]);
    const direction = new Map(ntk.headParamKeys.map((key) => [key, normalTensor(rng, (ntk.head.params.get(key) as HostTensor).shape)]));
    const feed = (scaleOf: (key: string) => number) =>
      Object.fromEntries(
        ntk.headParamKeys.map((key) => [
          w2Name(key),
          { ...(direction.get(key) as HostTensor), data: (direction.get(key) as HostTensor).data.map((v) => v * scaleOf(key)) },
        ]),
      );
    const a = await runProgramOnce(backend, tangentProgram(ntk), { [INPUT]: cut, ...feed(() => 1) }, 'ntk');
    const b = await runProgramOnce(backend, tangentProgram(standard), { [INPUT]: cut, ...feed((key) => ntk.scales.get(key) ?? 1) }, 'std');
    expect(relativeError(a[TANGENT].data, b[TANGENT].data).relative).toBeLessThan(1e-6);
    expect(relativeError(a[FEATURES].data, b[FEATURES].data).relative).toBeLessThan(1e-6);
  });

  it('the ablation head changes only the gradient term: J at other θ2, features still from θ̄2', async () => {
    const model = tinyModel();
    const rng = new Rng(4);
    const omega = omegaFor(model, rng);
    const cut = normalTensor(rng, [3, ...model.cutShape]);
    const direction = Object.fromEntries(
      [...initialParams(model, 'gradient', omega)].map(([name, value]) => [name, normalTensor(rng, value.shape)]),
    );
    const probe = { 'w1.weight': omega.weight, 'w1.bias': omega.bias };
    const run = (m: LinearisedModel, method: Method, params: Record<string, HostTensor>) =>
      runProgramOnce(backend, logitsProgram(m, method, omega), { [INPUT]: cut, ...params }, method);
    const randomHead = linearise(
      reinitialise(smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 }), new Rng(1)),
      {
        cut: 'block2',
      },
    ).head;
    const same = await run({ ...model, gradientTermHead: model.head }, 'gradient', direction);
    const plain = await run(model, 'gradient', direction);
    const ablated = await run({ ...model, gradientTermHead: randomHead }, 'gradient', direction);
    expect(same[LOGITS].data).toEqual(plain[LOGITS].data);
    expect(relativeError(ablated[LOGITS].data, plain[LOGITS].data).relative).toBeGreaterThan(1e-2);
    // full = probe on the pre-trained features + the (ablated) gradient term.
    const full = await run({ ...model, gradientTermHead: randomHead }, 'full', { ...direction, ...probe });
    const activation = await runProgramOnce(
      backend,
      logitsProgram(model, 'finetune', omega),
      { [INPUT]: cut, ...Object.fromEntries(initialParams(model, 'finetune', omega)) },
      'probe',
    );
    const sum = activation[LOGITS].data.map((v, i) => v + ablated[LOGITS].data[i]);
    expect(relativeError(full[LOGITS].data, sum).relative).toBeLessThan(1e-6);
  });

  // Central differences of the loss in float64 along a random direction of all trainables at once:
  // checks rules, NTK scaling and loss gradients end to end. ReLU kinks are measure-zero here.
  for (const [method, loss] of [...METHODS.map((m) => [m, 'softmax-ce'] as const), ['full', 'sigmoid-bce'] as const]) {
    it(`${method} with ${loss}: the gradient matches central differences of the loss (1e-3 relative: inputs are float32)`, async () => {
      const model = tinyModel();
      const rng = new Rng(10 + METHODS.indexOf(method));
      const omega = omegaFor(model, rng);
      const data = batch(model, method, rng);
      const mask =
        loss === 'sigmoid-bce' ? { shape: data.targets.shape, data: data.targets.data.map((_, i) => (i % 3 === 0 ? 0 : 1)) } : undefined;
      const params = initialParams(model, method, omega);
      for (const [name, value] of params) params.set(name, normalTensor(rng, value.shape, 0.3));
      const direction = new Map([...params].map(([name, value]) => [name, normalTensor(rng, value.shape)]));
      const outputs = await lossAndGrads(model, method, omega, params, data, loss, mask);
      let analytic = 0;
      for (const [name, d] of direction) {
        const grad = outputs[gradName(name)].data;
        for (let i = 0; i < d.data.length; i++) analytic += grad[i] * d.data[i];
      }
      const epsilon = 1e-3;
      const shifted = async (sign: number) => {
        const moved = new Map(
          [...params].map(([name, value]) => [
            name,
            { shape: value.shape, data: value.data.map((v, i) => v + sign * epsilon * (direction.get(name) as HostTensor).data[i]) },
          ]),
        );
        return (await lossAndGrads(model, method, omega, moved, data, loss, mask))[LOSS].data[0];
      };
      const numeric = ((await shifted(1)) - (await shifted(-1))) / (2 * epsilon);
      expect(Math.abs(numeric - analytic) / Math.abs(analytic)).toBeLessThan(1e-3);
    });
  }
});

describe('the linearisation point', () => {
  // The step at a cached point must be the step that evaluates the head: same loss, same gradients.
  for (const method of ['gradient', 'full'] as const) {
    for (const ablated of [false, true]) {
      it(`${method}${ablated ? ' (J at a random θ2)' : ''}: a cached point gives the loss and gradients of recomputing it (1e-5 relative)`, async () => {
        const base = tinyModel();
        const model = ablated
          ? {
              ...base,
              gradientTermHead: linearise(
                reinitialise(smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 }), new Rng(2)),
                { cut: 'block2' },
              ).head,
            }
          : base;
        const rng = new Rng(40);
        const omega = omegaFor(model, rng);
        const data = batch(model, method, rng, 6);
        const params = initialParams(model, method, omega);
        for (const [name, value] of params) params.set(name, normalTensor(rng, value.shape, 0.3));
        const point = await runProgramOnce(backend, linearisationPointProgram(model), { [INPUT]: data.inputs }, 'point');
        expect(Object.keys(point).sort()).toEqual([FEATURES, ...[...pointResiduals(model).keys()].map(residualInput)].sort());
        const feeds: Record<string, HostTensor> = {
          [INPUT]: data.inputs,
          [TARGETS]: data.targets,
          [BATCH_SCALE]: { shape: [1], data: Float32Array.of(1 / 6) },
          ...Object.fromEntries(params),
        };
        const recomputed = await runProgramOnce(backend, trainStepProgram(model, method, omega, 'softmax-ce'), feeds, 'r');
        const cachedFeeds = { ...feeds, ...point };
        if (method === 'gradient') delete cachedFeeds[FEATURES];
        const cached = await runProgramOnce(
          backend,
          trainStepProgram(model, method, omega, 'softmax-ce', { cachedPoint: true }),
          cachedFeeds,
          'c',
        );
        for (const name of [LOSS, ...[...params.keys()].map(gradName)]) {
          expect(relativeError(cached[name].data, recomputed[name].data).relative, name).toBeLessThanOrEqual(1e-5);
        }
      });
    }
  }

  it('holds what the linear rules read between θ2 and the features: the derivatives of the head’s ReLUs and the inputs of its convs', () => {
    const model = tinyModel();
    const names = [...pointResiduals(model).keys()];
    // the cut value is the steps' own input, never a residual
    expect(names).not.toContain(`value:${model.cut}`);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(name).toMatch(/^value:|:derivative$/);
  });
});

describe('fine-tuning coordinates', () => {
  it('fine-tuning trains θ2 in standard coordinates whatever the linearised models use; NTK only when asked', () => {
    const omega = omegaFor(tinyModel(), new Rng(50));
    const ntk = tinyModel('ntk');
    const effective = effectiveParams(ntk.head, ntk.scales);
    const standardStart = initialParams(ntk, 'finetune', omega);
    const ntkFinetune = linearise(smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 }), {
      cut: 'block2',
      finetuneParametrisation: 'ntk',
    });
    const ntkStart = initialParams(ntkFinetune, 'finetune', omega);
    for (const key of ntk.headParamKeys) {
      expect(standardStart.get(theta2Name(key))?.data).toEqual(effective.get(key)?.data);
      expect(ntkStart.get(theta2Name(key))?.data).toEqual(ntk.head.params.get(key)?.data);
    }
    expect(ntk.headParamKeys.some((key) => (ntk.scales.get(key) ?? 1) !== 1)).toBe(true);
  });
});

describe('training', () => {
  const config: TrainConfig = { epochs: 2, batchSize: 4, seed: 5, optimiser: { kind: 'adam', learningRate: 1e-2 } };

  async function train(method: Method, stopAfter?: number) {
    const model = tinyModel();
    const rng = new Rng(20);
    const omega = omegaFor(model, rng);
    const data = batch(model, method, rng, 10);
    const state = initialTrainState(model, method, omega, config.seed);
    const source = { inputs: memorySource(data.inputs), targets: data.targets };
    if (stopAfter === undefined) return trainMethod(backend, model, omega, 'softmax-ce', source, config, state);
    // Interrupt mid-epoch, keep a deep copy of the state as a checkpoint would, and resume from it.
    let checkpoint = '';
    await expect(
      trainMethod(backend, model, omega, 'softmax-ce', source, config, state, {
        checkpointEvery: 1,
        checkpoint: async (s) => {
          checkpoint = JSON.stringify({
            ...s,
            params: [...s.params].map(([k, v]) => [k, v.shape, [...v.data]]),
            optimiser: Object.entries(s.optimiser).map(([k, v]) => [k, v.map((a) => [...a])]),
          });
          if (s.step === stopAfter) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    const saved = JSON.parse(checkpoint);
    const restored = {
      ...saved,
      params: new Map(saved.params.map(([k, shape, data]: [string, number[], number[]]) => [k, { shape, data: Float32Array.from(data) }])),
      optimiser: Object.fromEntries(
        saved.optimiser.map(([k, arrays]: [string, number[][]]) => [k, arrays.map((a) => Float32Array.from(a))]),
      ),
    };
    return trainMethod(backend, model, omega, 'softmax-ce', source, config, restored);
  }

  it('gives the same numbers for the same seed, and the loss goes down', async () => {
    const a = await train('full');
    const b = await train('full');
    expect(a.history.map((h) => h.loss)).toEqual(b.history.map((h) => h.loss));
    expect(a.history).toHaveLength(6);
    expect(a.history.at(-1)?.loss).toBeLessThan(a.history[0].loss);
  });

  it('resumes from a mid-epoch checkpoint to exactly the uninterrupted result', async () => {
    const straight = await train('finetune');
    const resumed = await train('finetune', 4);
    expect(resumed.step).toBe(straight.step);
    for (const [name, value] of straight.params) expect(resumed.params.get(name)?.data).toEqual(value.data);
  });

  it('refuses data of the wrong shape for the method', async () => {
    const model = tinyModel();
    const omega = omegaFor(model, new Rng(1));
    const data = batch(model, 'activation', new Rng(1));
    await expect(
      trainMethod(
        backend,
        model,
        omega,
        'softmax-ce',
        { inputs: memorySource(data.inputs), targets: data.targets },
        config,
        initialTrainState(model, 'full', omega, 1),
      ),
    ).rejects.toThrow(/method 'full' needs samples of shape \[4, 3, 3\]/);
  });
});

describe('compareMethods', () => {
  it('runs the probe first, hands its ω̄ to the others, and picks weight decay on held-out data', async () => {
    const model = tinyModel();
    const rng = new Rng(30);
    const n = 24;
    const split = () => {
      const data = batch(model, 'full', rng, n);
      return { cut: memorySource(data.inputs), targets: data.targets };
    };
    const config: TrainConfig = { epochs: 2, batchSize: 8, seed: 1, optimiser: { kind: 'adam', learningRate: 1e-2 } };
    const phases: string[] = [];
    const results = await compareMethods({
      backend,
      model,
      loss: 'softmax-ce',
      train: split(),
      test: split(),
      methods: ['gradient', 'full'],
      configs: { activation: config, gradient: config, full: config, finetune: config },
      weightDecaySweep: { values: [0, 0.5], heldOutFraction: 0.25, methods: ['activation'] },
      events: { onPhase: (phase) => phases.push(phase) },
    });
    expect(results.map((r) => r.method)).toEqual(['gradient', 'full']);
    expect(phases).toEqual(['features', 'activation weight decay 0', 'activation weight decay 0.5', 'activation', 'gradient', 'full']);
    for (const result of results) {
      expect(result.state.step).toBe(6);
      expect(result.weightDecay).toBe(0);
    }
  });

  it("reports each method's top-1 as the accuracy of its trained parameters' logits on the test split", async () => {
    const model = tinyModel();
    const rng = new Rng(31);
    const split = () => {
      const data = batch(model, 'full', rng, 24);
      return { cut: memorySource(data.inputs), targets: data.targets };
    };
    const train = split();
    const test = split();
    const config: TrainConfig = { epochs: 2, batchSize: 8, seed: 1, optimiser: { kind: 'adam', learningRate: 1e-2 } };
    const results = await compareMethods({
      backend,
      model,
      loss: 'softmax-ce',
      train,
      test,
      methods: [...METHODS],
      configs: { activation: config, gradient: config, full: config, finetune: config },
    });
    const omegaBar = classifierOf(results[0].state);
    const labels = Array.from({ length: 24 }, (_, row) => test.targets.data.subarray(row * 4, row * 4 + 4).indexOf(1));
    const features = memorySource(await computeFeatures(backend, model, test.cut, 8));
    for (const result of results) {
      const inputs = result.method === 'activation' ? features : test.cut;
      const logits = await predict(backend, model, result.method, omegaBar, result.state.params, inputs, 8);
      const hits = labels.filter((label, row) => {
        const scores = Array.from(logits.data.subarray(row * 4, row * 4 + 4));
        return scores.indexOf(Math.max(...scores)) === label;
      }).length;
      expect(result.metrics.top1, result.method).toBe(hits / 24);
    }
  });
});
