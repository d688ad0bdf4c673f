import {
  BATCH_SCALE,
  type Backend,
  FEATURES,
  forwardProgram,
  gradName,
  type HostTensor,
  INPUT,
  initialParams,
  isLinearised,
  type LinearisedModel,
  LOSS,
  linearisationPointProgram,
  linearise,
  METHODS,
  type Method,
  mobileNetV1,
  normalTensor,
  oneHot,
  Rng,
  registeredBackends,
  relativeError,
  resolveBackend,
  runProgramOnce,
  type SignedProgram,
  TARGETS,
  trainStepProgram,
} from '@gradfeat/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFeedChecks } from '../../../test-support/feed-checks.js';
import { describeKernelConformance } from '../../../test-support/kernel-conformance.js';
import { createOnnxBackend } from '../src/index.js';
import { cpuOnlyNodes, createOnnxWebBackend } from '../src/web/index.js';

// onnxruntime-web's WebAssembly build, run here in Node on one thread: every kernel against the float64 reference.
describeKernelConformance('onnxruntime-web-wasm', () => createOnnxWebBackend(), 1e-4);
describeFeedChecks('onnxruntime-web-wasm', () => createOnnxWebBackend());

/** Runs the same program and inputs on both backends; the relative error of every output. */
async function compareBackends(
  web: Backend,
  node: Backend,
  program: SignedProgram,
  feed: Readonly<Record<string, HostTensor>>,
  name: string,
): Promise<Record<string, number>> {
  const ours = await runProgramOnce(web, program, feed, name);
  const reference = await runProgramOnce(node, program, feed, name);
  expect(Object.keys(ours).sort()).toEqual(Object.keys(reference).sort());
  return Object.fromEntries(Object.keys(reference).map((key) => [key, relativeError(ours[key].data, reference[key].data).relative]));
}

/** A training step's inputs at a point away from the methods' start (w2 = 0), so that every term is exercised. */
function stepFeed(model: LinearisedModel, method: Method, rng: Rng, batch: number, point: Record<string, HostTensor>) {
  const classes = 5;
  const omegaBar = { weight: normalTensor(rng, [classes, model.featureCount], 0.1), bias: normalTensor(rng, [classes], 0.1) };
  const params = initialParams(model, method, omegaBar);
  for (const [key, value] of params) params.set(key, normalTensor(rng, value.shape, 0.05));
  const inputs = method === 'activation' ? point[FEATURES] : normalTensor(rng, [batch, ...model.cutShape]);
  const feed: Record<string, HostTensor> = {
    [INPUT]: inputs,
    [TARGETS]: oneHot(
      Array.from({ length: batch }, () => rng.int(classes)),
      classes,
    ),
    [BATCH_SCALE]: { shape: [1], data: Float32Array.of(1 / batch) },
    ...Object.fromEntries(params),
  };
  return { omegaBar, feed };
}

describe('onnxruntime-web (wasm) against onnxruntime-node: MobileNet v1 0.25, θ2 = its last block', () => {
  const model = linearise(mobileNetV1({ alpha: 0.25, classes: 10, seed: 7 }), { cut: 'conv_pw_12_relu' });
  const batch = 3;
  const tolerance = 1e-5;
  let web: Backend;
  let node: Backend;
  beforeAll(async () => {
    web = await createOnnxWebBackend();
    node = await createOnnxBackend({ intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await web?.dispose?.();
    await node?.dispose?.();
  });

  /** Every output within the tolerance; the largest error is kept in the test report. */
  async function expectWithin(errors: Record<string, number>, annotate: (message: string) => Promise<unknown>): Promise<void> {
    for (const [output, error] of Object.entries(errors)) expect(error, output).toBeLessThanOrEqual(tolerance);
    await annotate(`largest relative error ${Math.max(...Object.values(errors)).toExponential(1)}`);
  }

  it(`runs the trunk (224×224 images to the cut) within ${tolerance} relative`, async ({ annotate }) => {
    expect(web.name).toBe('onnxruntime-web-wasm');
    const images = normalTensor(new Rng(1), [batch, 3, 224, 224]);
    const errors = await compareBackends(web, node, forwardProgram(model.trunk), { [INPUT]: images }, 'trunk');
    expect(Object.keys(errors)).toEqual(['outputs']);
    await expectWithin(errors, annotate);
  });

  it(`runs the linearised models' point within ${tolerance} relative`, async ({ annotate }) => {
    const cut = normalTensor(new Rng(2), [batch, ...model.cutShape]);
    const errors = await compareBackends(web, node, linearisationPointProgram(model), { [INPUT]: cut }, 'point');
    expect(Object.keys(errors)).toContain(FEATURES);
    await expectWithin(errors, annotate);
  });

  const variants = METHODS.flatMap((method) =>
    (isLinearised(method) ? [false, true] : [false]).map((cachedPoint) => ({ method, cachedPoint })),
  );
  it.for(variants)(
    `runs the $method training step (cached point: $cachedPoint): loss and every gradient within ${tolerance} relative`,
    async ({ method, cachedPoint }, { annotate }) => {
      const rng = new Rng(METHODS.indexOf(method) + 10);
      const cut = normalTensor(rng, [batch, ...model.cutShape]);
      const point = await runProgramOnce(node, linearisationPointProgram(model), { [INPUT]: cut }, 'point');
      const { omegaBar, feed } = stepFeed(model, method, rng, batch, point);
      if (method !== 'activation') feed[INPUT] = cut;
      const pointInputs = cachedPoint
        ? Object.fromEntries(Object.entries(point).filter(([key]) => method === 'full' || key !== FEATURES))
        : {};
      const errors = await compareBackends(
        web,
        node,
        trainStepProgram(model, method, omegaBar, 'softmax-ce', { cachedPoint }),
        { ...feed, ...pointInputs },
        `${method} step`,
      );
      expect(Object.keys(errors)).toContain(LOSS);
      expect(Object.keys(errors)).toEqual(expect.arrayContaining([...initialParams(model, method, omegaBar).keys()].map(gradName)));
      await expectWithin(errors, annotate);
    },
  );
});

describe('createOnnxWebBackend', () => {
  it("is the 'onnx-web' backend plugin, registered by importing @gradfeat/backend-onnx/web", async () => {
    expect(registeredBackends().map((plugin) => plugin.name)).toContain('onnx-web');
    const backend = await resolveBackend('onnx-web');
    expect(backend.name).toBe('onnxruntime-web-wasm');
  });

  it('skips WebGPU where navigator.gpu is missing (Node), with the reason, and runs on wasm', async () => {
    const reasons: string[] = [];
    const backend = await createOnnxWebBackend({ executionProviders: ['webgpu', 'wasm'], onFallback: (reason) => reasons.push(reason) });
    expect(backend.executionProvider).toBe('wasm');
    expect(backend.threads).toBe(1);
    expect(reasons).toEqual([backend.fallbackReason]);
    expect(backend.fallbackReason).toMatch(/skipped webgpu: navigator\.gpu is not available/);
  });

  it('fails with every reason when no provider can start', async () => {
    await expect(createOnnxWebBackend({ executionProviders: ['webgpu'] })).rejects.toThrow(
      /no onnxruntime-web execution provider could start:\n {2}webgpu: navigator\.gpu is not available/,
    );
    await expect(createOnnxWebBackend({ executionProviders: [] })).rejects.toThrow('executionProviders is empty');
  });

  it("puts WebGPU's MaxPool with indices (maxPoolJvp, maxPoolBackprop) on the CPU, and nothing for wasm", async () => {
    const { traceProgram } = await import('../src/web/index.js');
    const attrs = { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] } as const;
    const { model } = traceProgram(
      {
        program: (k, { x, dx }) => ({ y: k.maxPool(x, attrs), tangent: k.maxPoolJvp(x, dx, attrs) }),
        inputs: { x: [-1, 2, 4, 4], dx: [-1, 2, 4, 4] },
        outputs: { y: [-1, 2, 2, 2], tangent: [-1, 2, 2, 2] },
      },
      { name: 'pool' },
    );
    const forced = cpuOnlyNodes(model, 'webgpu');
    expect(forced).toHaveLength(1);
    expect(forced[0]).toMatch(/^maxpool_/);
    expect(cpuOnlyNodes(model, 'wasm')).toEqual([]);
  });
});
