/**
 * Training steps per second of MobileNet v1 0.25 with θ2 = its last block (cut conv_pw_12_relu, batch
 * 16, the docs page's setting), and trunk extraction in images per second, on onnxruntime-node and,
 * in Debian's Chromium, on onnxruntime-web: WebAssembly with one thread (a page without COOP/COEP),
 * with two (cross-origin isolated) and the native WebGPU provider (here a software adapter).
 * Every figure is core's benchmarkNetwork (median of --runs runs after WARMUP): the same workloads
 * `gradfeat bench --model` times, on random weights. Each is also given as a ratio to onnxruntime-node
 * with as many threads (WebGPU: to one thread), measured in the same run. WebGPU is measured only with
 * --webgpu: on a software adapter each kernel's shader compiles slowly, and a run takes minutes.
 * Run from the repository root:
 *   npx tsx --conditions=source packages/backend-onnx/bench/web-steps.ts [--runs 5] [--webgpu] [--json]
 */
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Backend, benchmarkNetwork, mobileNetV1, NETWORK_WORKLOADS, type NetworkWorkload } from '@gradfeat/core';
import { CROSS_ORIGIN_ISOLATION, launchChromium, ORT_WEB_FILES, scriptPage, serveDirectory } from '../../../test-support/browser.js';
import { createOnnxBackend } from '../src/index.js';

const { values: options } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    webgpu: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const RUNS = Number(options.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) {
  console.error(`--runs must be a whole number of at least 1, not '${options.runs}'`);
  process.exit(2);
}
const WARMUP = 1;
const BATCH = 16;
const CUT = 'conv_pw_12_relu';

type Figures = Partial<Record<NetworkWorkload, number>>;

/** Steps per second for the training workloads, images per second for extraction. */
function rate(workload: NetworkWorkload, imagesPerSecond: number): number {
  return workload === 'extract' ? imagesPerSecond : imagesPerSecond / BATCH;
}

async function onNode(backend: Backend): Promise<Figures> {
  const network = mobileNetV1({ alpha: 0.25, classes: 10, seed: 0 });
  const figures: Figures = {};
  for (const workload of NETWORK_WORKLOADS) {
    const result = await benchmarkNetwork(backend, network, CUT, workload, BATCH, { runs: RUNS, warmup: WARMUP });
    figures[workload] = rate(workload, result.imagesPerSecond);
  }
  return figures;
}

const PAGE = `
import { createOnnxWebBackend } from '@gradfeat/backend-onnx/web';
import { benchmarkNetwork, mobileNetV1, NETWORK_WORKLOADS } from '@gradfeat/core';
window.bench = async (provider) => {
  const backend = await createOnnxWebBackend({ executionProviders: [provider], wasmPaths: '${ORT_WEB_FILES}' });
  const network = mobileNetV1({ alpha: 0.25, classes: 10, seed: 0 });
  const figures = {};
  for (const workload of NETWORK_WORKLOADS) {
    const result = await benchmarkNetwork(backend, network, '${CUT}', workload, ${BATCH}, { runs: ${RUNS}, warmup: ${WARMUP} });
    figures[workload] = workload === 'extract' ? result.imagesPerSecond : result.imagesPerSecond / ${BATCH};
  }
  return { name: backend.name, threads: backend.threads, figures };
};
`;

async function inChromium(provider: 'wasm' | 'webgpu', isolated: boolean): Promise<{ name: string; threads: number; figures: Figures }> {
  const page = await scriptPage(PAGE, resolve(dirname(fileURLToPath(import.meta.url)), '..'));
  const server = await serveDirectory(page.directory, isolated ? CROSS_ORIGIN_ISOLATION : {});
  const browser = await launchChromium(provider === 'webgpu' ? ['--enable-unsafe-webgpu'] : []);
  try {
    const tab = await browser.newPage();
    await tab.goto(server.url);
    return await tab.evaluate((p) => (globalThis as unknown as { bench(p: string): Promise<never> }).bench(p), provider);
  } finally {
    await browser.close();
    await server.close();
    await page.remove();
  }
}

interface Row {
  readonly runtime: string;
  readonly threads: number;
  readonly figures: Figures;
  /** Each figure over onnxruntime-node's with as many threads (one, for WebGPU). */
  readonly ratios?: Figures;
}

const nodeRows: Row[] = [];
for (const threads of [1, 2]) {
  const figures = await onNode(await createOnnxBackend({ intraOpNumThreads: threads }));
  nodeRows.push({ runtime: `onnxruntime-node, ${threads} thread${threads > 1 ? 's' : ''}`, threads, figures });
}
const webRuns: (readonly ['wasm' | 'webgpu', boolean])[] = [
  ['wasm', false],
  ['wasm', true],
  ...(options.webgpu ? [['webgpu', false] as const] : []),
];
const webRows: Row[] = [];
for (const [provider, isolated] of webRuns) {
  const { name, threads, figures } = await inChromium(provider, isolated);
  const reference = (nodeRows.find((row) => row.threads === (provider === 'webgpu' ? 1 : threads)) ?? nodeRows[0]).figures;
  const ratios = Object.fromEntries(
    NETWORK_WORKLOADS.map((workload) => [workload, (figures[workload] ?? Number.NaN) / (reference[workload] ?? Number.NaN)]),
  );
  webRows.push({
    runtime: `${name} in Chromium, ${threads} thread${threads > 1 ? 's' : ''}${isolated ? ' (COOP/COEP)' : ''}`,
    threads,
    figures,
    ratios,
  });
}
const rows = [...nodeRows, ...webRows];

if (options.json) {
  console.log(JSON.stringify({ batch: BATCH, cut: CUT, runs: RUNS, loadAverage: loadavg()[0], rows }, null, 2));
} else {
  const format = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(value < 10 ? 1 : 0));
  const cell = (row: Row, workload: NetworkWorkload) =>
    `${format(row.figures[workload])}${row.ratios ? ` (${(row.ratios[workload] ?? Number.NaN).toFixed(2)}×)` : ''}`;
  console.log(`MobileNet v1 0.25, θ2 after ${CUT}, batch ${BATCH}; median of ${RUNS} runs; load average ${loadavg()[0].toFixed(1)}`);
  console.log('(×: over onnxruntime-node with as many threads, or one for WebGPU)');
  console.log('| runtime | gradient step/s | full step/s | finetune step/s | extract images/s |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const row of rows) {
    console.log(
      `| ${row.runtime} | ${cell(row, 'gradient_step')} | ${cell(row, 'full_step')} | ${cell(row, 'finetune_step')} | ${cell(row, 'extract')} |`,
    );
  }
}
