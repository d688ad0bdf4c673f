import {
  BENCH_WORKLOADS,
  type BenchResult,
  type BenchWorkload,
  benchmarkNetwork,
  NETWORK_WORKLOADS,
  type NetworkWorkload,
  runBenchmark,
} from '@gradfeat/core';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { backendOption, loadModel, openBackend } from '../backends.js';
import { createProgress, emit, renderTable } from '../output.js';
import { integerOption } from '../parse.js';

interface BenchOptions {
  backend?: string;
  workload?: string[];
  runs: number;
  warmup: number;
  model?: string;
  cut?: string;
  batch: number;
  json?: boolean;
}

/** The workloads asked for, checked against the set that applies (the reference ones, or a --model's). */
function chosenWorkloads<W extends string>(asked: readonly string[] | undefined, valid: readonly W[], what: string): readonly W[] {
  if (!asked) return valid;
  const unknown = asked.filter((name) => !valid.includes(name as W));
  if (unknown.length > 0) throw new InvalidArgumentError(`--workload ${unknown.join(', ')}: ${what} has the workloads ${valid.join(', ')}`);
  return asked as W[];
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'images per second of trunk extraction and training steps (random inputs; median of several runs); compare with PyTorch on the same machine',
    )
    .addOption(backendOption())
    .option(
      '--workload <name...>',
      `workloads to run (default: all): ${BENCH_WORKLOADS.join(', ')}; with --model: ${NETWORK_WORKLOADS.join(', ')}`,
    )
    .option('--runs <n>', 'timed runs per workload (the median is reported)', integerOption('--runs', 1), 7)
    .option('--warmup <n>', 'untimed runs first', integerOption('--warmup'), 2)
    .option('--model <path>', 'benchmark this network (its own weights) instead of the reference workloads; needs --cut')
    .option('--cut <node>', 'with --model: the end of the frozen trunk; the head after it is θ2')
    .addOption(new Option('--batch <n>', 'with --model: images per batch').argParser(integerOption('--batch', 1)).default(64))
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      [
        '',
        'The reference workloads have the names, shapes and optimisers of ../shared/bench/bench_torch.py;',
        'run both in one go for ratios: pnpm bench:pytorch (see packages/cli/bench/vs-pytorch.ts).',
        '',
        'Examples:',
        '  gradfeat bench --json',
        '  gradfeat bench --workload full_step_mb13 finetune_step_mb13 --runs 5',
        '  gradfeat bench --model ../shared/models/mobilenet_v1_0.25_224/model.json --cut conv_pw_12_relu --batch 32',
      ].join('\n'),
    )
    .action(async (options: BenchOptions) => {
      if (options.cut !== undefined && options.model === undefined) throw new InvalidArgumentError('--cut needs --model');
      const backend = await openBackend(options.backend);
      const progress = createProgress();
      const timing = { runs: options.runs, warmup: options.warmup };
      const results: BenchResult[] = [];
      let jobs: (() => Promise<BenchResult>)[];
      if (options.model !== undefined) {
        if (options.cut === undefined) throw new InvalidArgumentError('--model needs --cut: where the frozen trunk ends');
        const network = await loadModel(options.model);
        const cut = options.cut;
        jobs = chosenWorkloads<NetworkWorkload>(options.workload, NETWORK_WORKLOADS, `--model`).map(
          (workload) => () => benchmarkNetwork(backend, network, cut, workload, options.batch, timing),
        );
      } else {
        jobs = chosenWorkloads<BenchWorkload>(options.workload, BENCH_WORKLOADS, 'the reference set').map(
          (workload) => () => runBenchmark(backend, workload, timing),
        );
      }
      for (const [index, job] of jobs.entries()) {
        progress.update('bench', index, jobs.length, {});
        results.push(await job());
      }
      progress.update('bench', jobs.length, jobs.length, {});
      progress.finish();
      const json = {
        backend: backend.name,
        ...(options.model ? { model: options.model, cut: options.cut } : {}),
        ...Object.fromEntries(results.map((r) => [r.workload, r.imagesPerSecond])),
        details: results,
      };
      emit(options.json === true, json, () =>
        [
          `backend ${backend.name}, median of ${options.runs} runs after ${options.warmup} warm-up`,
          renderTable(
            ['workload', 'batch', 'images/s', 'ms/run', 'peak RSS'],
            results.map((r) => [
              r.workload,
              String(r.batch),
              r.imagesPerSecond.toFixed(0),
              (r.medianSeconds * 1000).toFixed(1),
              `${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
            ]),
          ),
        ].join('\n'),
      );
    });
}
