/**
 * Issue 3's backend benchmark: trunk extraction (ResNet-20 at 32×32, batch 256; MobileNet v1 0.25 at
 * 224×224 up to its last block, batch 32) and the ResNet-20 last-block training steps, on ONNX
 * Runtime and on TF.js. Median of several runs; prints a table and, with --json, JSON.
 *   npx tsx --conditions=source packages/cli/bench/backends.ts [--json] [--runs N]
 * Needs ../shared for the two real networks; random weights stand in for ResNet-20 without it.
 */
import { existsSync } from 'node:fs';
import { createOnnxBackend, importOnnx } from '@gradfeat/backend-onnx';
import { createTfjsBackend, importKerasModel } from '@gradfeat/backend-tfjs';
import { type Backend, benchmarkExtraction, cutNetwork, foldBatchNorm, runBenchmark } from '@gradfeat/core';
import { SHARED_DIR, sharedPath } from '../../../test-support/shared.js';

const json = process.argv.includes('--json');
const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5;

if (!existsSync(SHARED_DIR)) console.error(`${SHARED_DIR} not found: the MobileNet row is skipped and ResNet-20 uses random weights`);
const resnet20 = existsSync(SHARED_DIR) ? importOnnx(sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx')) : undefined;
const mobilenet = existsSync(SHARED_DIR) ? await importKerasModel(sharedPath('models', 'mobilenet_v1_0.25_224', 'model.json')) : undefined;

const rows: { backend: string; workload: string; batch: number; imagesPerSecond: number }[] = [];
const backends: Backend[] = [await createOnnxBackend(), await createTfjsBackend()];
for (const backend of backends) {
  const options = { runs, warmup: 1, resnet20 };
  for (const workload of ['extract_r20', 'full_step_r20', 'finetune_step_r20'] as const) {
    const result = await runBenchmark(backend, workload, options);
    rows.push({ backend: backend.name, workload, batch: result.batch, imagesPerSecond: result.imagesPerSecond });
  }
  if (mobilenet) {
    const trunk = cutNetwork(foldBatchNorm(mobilenet), 'conv_pw_12_relu').trunk;
    const result = await benchmarkExtraction(backend, trunk, 32, options);
    rows.push({ backend: backend.name, workload: 'extract_mobilenet_224', batch: 32, imagesPerSecond: result.imagesPerSecond });
  }
}

if (json) console.log(JSON.stringify({ runs, rows }, null, 2));
else {
  console.log(`median of ${runs} runs`);
  for (const row of rows)
    console.log(
      `${row.backend.padEnd(18)} ${row.workload.padEnd(24)} batch ${String(row.batch).padStart(3)}  ${row.imagesPerSecond.toFixed(1).padStart(8)} images/s`,
    );
}
