import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gradName, LOGITS, LOSS, W1, w2Name } from '@gradfeat/core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  consoleErrors,
  describeWithChromium,
  launchChromium,
  ORT_WEB_FILES,
  type ScriptPage,
  type StaticServer,
  scriptPage,
  serveDirectory,
} from '../../../test-support/browser.js';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** WebGPU's float32 shaders (here SwiftShader's, on the CPU) round differently from ONNX Runtime's WebAssembly kernels. */
const TOLERANCE = 1e-5;

/**
 * A tiny network, all of it θ2: a conv, then a max-pool that its tangent and gradient pass through
 * (at the pool's Indices output, which the WebGPU provider cannot compute: it runs on the CPU). The
 * full model's training step runs on the native WebGPU provider and on WebAssembly in the same page.
 */
const SMOKE = `
import { cpuOnlyNodes, createOnnxWebBackend, traceProgram } from '@gradfeat/backend-onnx/web';
import { BATCH_SCALE, INPUT, initialParams, linearise, normalTensor, oneHot, relativeError, reinitialise, Rng, TARGETS, trainStepProgram } from '@gradfeat/core';

const conv = (name, input) => ({ name, op: 'Conv2D', inputs: [input], attrs: { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 }, params: { weight: name + '.weight', bias: name + '.bias' } });
const graph = reinitialise({
  inputs: [{ name: 'input', shape: [-1, 3, 8, 8] }],
  nodes: [
    conv('conv1', 'input'), { name: 'relu1', op: 'ReLU', inputs: ['conv1'], attrs: {}, params: {} },
    { name: 'pool', op: 'MaxPool', inputs: ['relu1'], attrs: { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] }, params: {} },
    { name: 'gap', op: 'GlobalAvgPool', inputs: ['pool'], attrs: {}, params: {} },
    { name: 'features', op: 'Flatten', inputs: ['gap'], attrs: {}, params: {} },
    { name: 'classifier', op: 'Dense', inputs: ['features'], attrs: {}, params: { weight: 'classifier.weight', bias: 'classifier.bias' } },
  ],
  outputs: ['classifier'],
  params: new Map([
    ['conv1.weight', { shape: [8, 3, 3, 3], data: new Float32Array(216) }], ['conv1.bias', { shape: [8], data: new Float32Array(8) }],
    ['classifier.weight', { shape: [3, 8], data: new Float32Array(24) }], ['classifier.bias', { shape: [3], data: new Float32Array(3) }],
  ]),
}, new Rng(1));

window.smoke = async () => {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (!adapter) return { skipped: navigator.gpu ? 'navigator.gpu.requestAdapter() found no adapter' : 'navigator.gpu is missing' };
  const options = { wasmPaths: '${ORT_WEB_FILES}' };
  const gpu = await createOnnxWebBackend({ ...options, executionProviders: ['webgpu'] });
  const wasm = await createOnnxWebBackend({ ...options, executionProviders: ['wasm'] });
  const model = linearise(graph, { cut: 'input' });
  const rng = new Rng(2);
  const omegaBar = { weight: normalTensor(rng, [3, 8], 0.5), bias: normalTensor(rng, [3], 0.5) };
  const params = initialParams(model, 'full', omegaBar);
  for (const [key, value] of params) params.set(key, normalTensor(rng, value.shape, 0.1));
  const feed = { [INPUT]: normalTensor(rng, [4, 3, 8, 8]), [TARGETS]: oneHot([0, 1, 2, 1], 3), [BATCH_SCALE]: { shape: [1], data: Float32Array.of(0.25) }, ...Object.fromEntries(params) };
  const step = trainStepProgram(model, 'full', omegaBar, 'softmax-ce');
  const run = async (backend) => {
    const compiled = await backend.compile(step, { name: 'full step' });
    try { return await compiled.run(feed); } finally { compiled.dispose(); }
  };
  // Each kernel WebGPU runs costs a shader compilation, slow on a software adapter: one step graph.
  const [onGpu, onWasm] = [await run(gpu), await run(wasm)];
  const errors = Object.fromEntries(Object.keys(onWasm).map((key) => [key, relativeError(onGpu[key].data, onWasm[key].data).relative]));
  const onCpu = cpuOnlyNodes(traceProgram(step, { name: 'full step' }).model, 'webgpu');
  return { adapter: [adapter.info?.vendor, adapter.info?.architecture].filter(Boolean).join(' '), backends: [gpu.name, wasm.name], errors, onCpu };
};
`;

interface SmokeResult {
  readonly skipped?: string;
  readonly adapter: string;
  readonly backends: readonly string[];
  readonly errors: Record<string, number>;
  readonly onCpu: readonly string[];
}

describeWithChromium('the native WebGPU provider in Chromium (--enable-unsafe-webgpu, software adapter)', () => {
  let browser: Browser;
  let bundle: ScriptPage;
  let server: StaticServer;
  let page: Page;
  let errors: string[];
  beforeAll(async () => {
    bundle = await scriptPage(SMOKE, packageDir);
    server = await serveDirectory(bundle.directory);
    browser = await launchChromium(['--enable-unsafe-webgpu']);
    page = await browser.newPage();
    errors = consoleErrors(page);
    await page.goto(server.url);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await bundle?.remove();
  });

  it(`runs a tiny network's full training step (max-pool indices on the CPU) as WebAssembly does, within ${TOLERANCE} relative`, async ({
    skip,
    annotate,
  }) => {
    const result = (await page.evaluate(() => (globalThis as unknown as { smoke(): Promise<unknown> }).smoke())) as SmokeResult;
    if (result.skipped) skip(`Chromium offers no WebGPU adapter here: ${result.skipped}`);
    expect(result.backends).toEqual(['onnxruntime-web-webgpu', 'onnxruntime-web-wasm']);
    expect(result.onCpu.length, 'max-pool nodes with indices, run on the CPU').toBeGreaterThan(0);
    expect(Object.keys(result.errors)).toEqual(expect.arrayContaining([LOSS, LOGITS, gradName(W1), gradName(w2Name('conv1.weight'))]));
    for (const [output, error] of Object.entries(result.errors)) expect(error, output).toBeLessThanOrEqual(TOLERANCE);
    await annotate(`${result.adapter}: largest relative error ${Math.max(...Object.values(result.errors)).toExponential(1)}`);
    expect(errors).toEqual([]);
  });
});
