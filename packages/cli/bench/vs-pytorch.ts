/**
 * gradfeat against PyTorch on the same machine in one go: runs ../shared/bench/bench_torch.py and
 * `gradfeat bench` alternately, REPEATS times each, and prints per workload the median of each side's
 * figures, their ratio (with the range of each repeat's own ratio), and the peak resident memory (gradfeat: each workload in its own process;
 * PyTorch: its whole run). Ratios are only meaningful within one run on one machine.
 *   pnpm bench:pytorch [--repeats 3] [--runs 5] [--json] [--workload full_step_mb13 ...]
 * Needs Debian's python3-torch (apt-get install python3-torch) and ../shared; builds nothing itself,
 * so run `pnpm build` first.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_WORKLOADS, type BenchResult, median } from '@gradfeat/core';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const torchScript = join(root, '../shared/bench/bench_torch.py');
const cli = join(root, 'packages/cli/dist/bin.js');
const python = '/usr/bin/python3';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    repeats: { type: 'string', default: '3' },
    runs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    workload: { type: 'boolean', default: false },
  },
});
const repeats = Number(options.repeats);
const runs = Number(options.runs);
const json = options.json;
// --workload a b c: the names after it (positionals), else every workload.
const workloads = options.workload ? positionals : [...BENCH_WORKLOADS];

for (const [path, what] of [
  [torchScript, '../shared/bench/bench_torch.py (the reference data folder beside the repository)'],
  [python, "Debian's python3 with PyTorch: apt-get install python3-torch"],
  [cli, 'the built CLI: run pnpm build first'],
] as const) {
  if (!existsSync(path)) {
    console.error(`missing ${path}: ${what}`);
    process.exit(2);
  }
}

/** bench_torch.py's JSON, with its process's peak RSS measured around it. */
function runTorch(): { figures: Record<string, number>; peakRssBytes: number } {
  const wrapper = [
    'import resource, runpy, sys',
    `sys.argv = [${JSON.stringify(torchScript)}, '--threads', '2']`,
    `runpy.run_path(${JSON.stringify(torchScript)}, run_name='__main__')`,
    'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)',
  ].join('\n');
  const run = spawnSync(python, ['-c', wrapper], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`bench_torch.py failed:\n${run.stderr}`);
  const peakKiB = Number(run.stderr.trim().split('\n').at(-1));
  return { figures: JSON.parse(run.stdout.trim().split('\n').at(-1) as string), peakRssBytes: peakKiB * 1024 };
}

function runGradfeat(workload: string): BenchResult {
  const output = execFileSync('node', [cli, 'bench', '--json', '--runs', String(runs), '--workload', workload], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return (JSON.parse(output) as { details: BenchResult[] }).details[0];
}

const torchRuns: Record<string, number>[] = [];
let torchPeakRssBytes = 0;
const gradfeatRuns = new Map<string, BenchResult[]>(workloads.map((w) => [w, []]));
const loadBefore = loadavg()[0];
for (let repeat = 0; repeat < repeats; repeat++) {
  console.error(`repeat ${repeat + 1}/${repeats}: PyTorch`);
  const torch = runTorch();
  torchRuns.push(torch.figures);
  torchPeakRssBytes = Math.max(torchPeakRssBytes, torch.peakRssBytes);
  for (const workload of workloads) {
    console.error(`repeat ${repeat + 1}/${repeats}: gradfeat ${workload}`);
    gradfeatRuns.get(workload)?.push(runGradfeat(workload));
  }
}

/** The smallest and largest of some figures. */
const extent = (values: readonly number[]): [number, number] => [Math.min(...values), Math.max(...values)];

const rows = workloads.map((workload) => {
  const ours = gradfeatRuns.get(workload) as BenchResult[];
  const theirs = torchRuns.map((run) => run[workload]);
  const gradfeat = median(ours.map((r) => r.imagesPerSecond));
  const pytorch = median(theirs);
  return {
    workload,
    batch: ours[0].batch,
    gradfeat,
    gradfeatRange: extent(ours.map((r) => r.imagesPerSecond)),
    pytorch,
    pytorchRange: extent(theirs),
    ratio: gradfeat / pytorch,
    // Each repeat's own ratio: its PyTorch and gradfeat runs are minutes apart, not a whole run.
    repeatRatioRange: extent(ours.map((r, repeat) => r.imagesPerSecond / theirs[repeat])),
    peakRssMiB: Math.max(...ours.map((r) => r.peakRssBytes)) / 2 ** 20,
  };
});
const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadBefore, loadAfter: loadavg()[0] };
const pytorchPeakRssMiB = torchPeakRssBytes / 2 ** 20;

if (json) console.log(JSON.stringify({ machine, repeats, runs, torch: torchRuns[0]?.torch, pytorchPeakRssMiB, rows }, null, 2));
else {
  console.log(
    `${machine.cpu}, ${machine.cores} cores; load average ${loadBefore.toFixed(2)} before, ${machine.loadAfter.toFixed(2)} after; median of ${repeats} repeats; PyTorch ${torchRuns[0]?.torch} peak RSS ${pytorchPeakRssMiB.toFixed(0)} MiB (all workloads in one process)`,
  );
  console.log('| workload | batch | PyTorch (images/s) | gradfeat (images/s) | ratio (per repeat) | gradfeat peak RSS |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  const range = ([low, high]: number[], digits = 0) => `${low.toFixed(digits)}–${high.toFixed(digits)}`;
  for (const row of rows) {
    console.log(
      `| \`${row.workload}\` | ${row.batch} | ${row.pytorch.toFixed(0)} (${range(row.pytorchRange)}) | ${row.gradfeat.toFixed(0)} (${range(row.gradfeatRange)}) | ${row.ratio.toFixed(2)}× (${range(row.repeatRatioRange, 2)}) | ${row.peakRssMiB.toFixed(0)} MiB |`,
    );
  }
}
