/**
 * Issue 3's backend benchmark: trunk extraction (ResNet-20 at 32×32, batch 256; MobileNet v1 0.25 at
 * 224×224 up to its last block, batch 32) and the ResNet-20 last-block training steps, on ONNX
 * Runtime and on TF.js. Median of several runs; prints a table and, with --json, JSON.
 *   npx tsx --conditions=source packages/cli/bench/backends.ts [--json] [--runs N]
 */
import { createOnnxBackend } from '@gradfeat/backend-onnx';
import { createTfjsBackend } from '@gradfeat/backend-tfjs';
import { type Backend, type BenchWorkload, runBenchmark } from '@gradfeat/core';

const json = process.argv.includes('--json');
const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5;
const workloads: readonly BenchWorkload[] = ['extract_r20', 'full_step_r20', 'finetune_step_r20', 'extract_mb'];

const rows: { backend: string; workload: string; batch: number; imagesPerSecond: number }[] = [];
const backends: Backend[] = [await createOnnxBackend(), await createTfjsBackend()];
for (const backend of backends) {
  for (const workload of workloads) {
    const result = await runBenchmark(backend, workload, { runs, warmup: 1 });
    rows.push({ backend: backend.name, workload, batch: result.batch, imagesPerSecond: result.imagesPerSecond });
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
