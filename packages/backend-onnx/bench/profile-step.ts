/**
 * Where a workload's time goes inside ONNX Runtime: runs `gradfeat bench` workloads with ORT's
 * profiler on and prints, per op type, the kernel time per run (summed over nodes) and its share
 * of the run, plus the costliest nodes. Kernel times are per node, so they add up to the run only
 * when nothing else runs beside it.
 *   npx tsx --conditions=source packages/backend-onnx/bench/profile-step.ts [--runs 10] [--threads N] [--top 12] full_step_mb13 …
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH_WORKLOADS, type BenchWorkload, runBenchmark } from '@gradfeat/core';
import { createOnnxBackend } from '../src/index.js';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: 'string', default: '10' }, top: { type: 'string', default: '12' }, threads: { type: 'string' } },
});
const runs = Number(options.runs);
const top = Number(options.top);
const threads = options.threads === undefined ? undefined : Number(options.threads);
const workloads = positionals as BenchWorkload[];
const unknown = workloads.filter((name) => !(BENCH_WORKLOADS as readonly string[]).includes(name));
if (workloads.length === 0 || unknown.length > 0) {
  console.error(
    `${unknown.length > 0 ? `unknown workload ${unknown.join(', ')}; ` : ''}name one or more of: ${BENCH_WORKLOADS.join(', ')}`,
  );
  process.exit(2);
}

interface ProfileEvent {
  readonly cat: string;
  readonly name: string;
  readonly dur: number;
  readonly args?: { readonly op_name?: string; readonly output_type_shape?: readonly Record<string, readonly number[]>[] };
}

for (const workload of workloads) {
  const prefix = join(tmpdir(), `gradfeat-profile-${process.pid}-${workload}`);
  const backend = await createOnnxBackend({
    intraOpNumThreads: threads,
    sessionOptions: { enableProfiling: true, profileFilePrefix: prefix },
  });
  const result = await runBenchmark(backend, workload, { runs, warmup: 2 });
  const directory = tmpdir();
  const files = readdirSync(directory).filter((f) => join(directory, f).startsWith(prefix));
  // One file per session: keep the measured session's (the one that ran most), not the setup programs'.
  const runsOf = (events: ProfileEvent[]) => events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length;
  const events: ProfileEvent[] = files
    .map((f) => JSON.parse(readFileSync(join(directory, f), 'utf8')) as ProfileEvent[])
    .reduce((best, next) => (runsOf(next) > runsOf(best) ? next : best), []);
  if (!process.env.KEEP_PROFILE) for (const f of files) rmSync(join(directory, f));
  // The warm-up runs grow ONNX Runtime's memory arena (page faults on first touch): leave them out.
  const warmup = 2;
  const modelRun = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(warmup);
  const runMicros = modelRun.reduce((t, e) => t + e.dur, 0) / modelRun.length;
  const byOp = new Map<string, { micros: number; nodes: number }>();
  const byNode = new Map<string, { op: string; micros: number; shape: string; seen: number }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const shape = (e.args?.output_type_shape ?? []).map((o) => `[${Object.values(o)[0]?.join(',')}]`).join(' ');
    const node = byNode.get(e.name) ?? { op, micros: 0, shape, seen: 0 };
    byNode.set(e.name, node);
    if (node.seen++ < warmup) continue;
    node.micros += e.dur / runs;
    const entry = byOp.get(op) ?? { micros: 0, nodes: 0 };
    entry.micros += e.dur / runs;
    entry.nodes += 1 / runs;
    byOp.set(op, entry);
  }
  const kernelMicros = [...byOp.values()].reduce((t, e) => t + e.micros, 0);
  console.log(
    `\n${workload}: ${result.imagesPerSecond.toFixed(0)} images/s (batch ${result.batch}); ORT run ${(runMicros / 1000).toFixed(2)} ms, kernels ${(kernelMicros / 1000).toFixed(2)} ms per run`,
  );
  console.log('| op | nodes | ms per run | share of kernel time |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [op, entry] of [...byOp].sort((a, b) => b[1].micros - a[1].micros)) {
    console.log(
      `| ${op} | ${Math.round(entry.nodes)} | ${(entry.micros / 1000).toFixed(2)} | ${((100 * entry.micros) / kernelMicros).toFixed(1)} % |`,
    );
  }
  console.log(`costliest nodes:`);
  for (const [name, node] of [...byNode].sort((a, b) => b[1].micros - a[1].micros).slice(0, top)) {
    console.log(
      `  ${(node.micros / 1000).toFixed(2).padStart(7)} ms  ${node.op.padEnd(18)} ${name.replace(/_kernel_time$/, '').padEnd(20)} → ${node.shape}`,
    );
  }
}
