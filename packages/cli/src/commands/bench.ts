import { BENCH_WORKLOADS, type BenchResult, type BenchWorkload, PYTORCH_IMAGES_PER_SECOND, runBenchmark } from '@gradfeat/core';
import { type Command, Option } from 'commander';
import { backendOption, loadModel, openBackend } from '../backends.js';
import { createProgress, emit, renderTable } from '../output.js';
import { integerOption } from '../parse.js';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('images per second of trunk extraction and training steps (random weights and inputs; median of several runs)')
    .addOption(backendOption())
    .addOption(new Option('--workload <name...>', 'workloads to run (default: all)').choices(BENCH_WORKLOADS))
    .option('--runs <n>', 'timed runs per workload (the median is reported)', integerOption('--runs', 1), 7)
    .option('--warmup <n>', 'untimed runs first', integerOption('--warmup'), 2)
    .option(
      '--model <path>',
      'a ResNet-20 for the *_r20 workloads instead of random weights, e.g. ../shared/models/resnet20-cifar10/resnet20.onnx',
    )
    .option('--json', 'print the results as JSON')
    .addHelpText('after', '\nExamples:\n  gradfeat bench --json\n  gradfeat bench --backend tfjs --workload full_step_r20 --runs 3')
    .action(
      async (options: { backend?: string; workload?: BenchWorkload[]; runs: number; warmup: number; model?: string; json?: boolean }) => {
        const backend = await openBackend(options.backend);
        const resnet20 = options.model ? await loadModel(options.model) : undefined;
        const progress = createProgress();
        const workloads = options.workload ?? BENCH_WORKLOADS;
        const results: BenchResult[] = [];
        for (const [index, workload] of workloads.entries()) {
          progress.update('bench', index, workloads.length, {});
          results.push(await runBenchmark(backend, workload, { runs: options.runs, warmup: options.warmup, resnet20 }));
        }
        progress.update('bench', workloads.length, workloads.length, {});
        progress.finish();
        const json = {
          backend: backend.name,
          ...Object.fromEntries(results.map((r) => [r.workload, r.imagesPerSecond])),
          details: results,
          pytorchReference: PYTORCH_IMAGES_PER_SECOND,
        };
        emit(options.json === true, json, () =>
          [
            `backend ${backend.name}, median of ${options.runs} runs after ${options.warmup} warm-up`,
            renderTable(
              ['workload', 'batch', 'images/s', 'PyTorch 1.13', 'ratio'],
              results.map((r) => [
                r.workload,
                String(r.batch),
                r.imagesPerSecond.toFixed(0),
                String(PYTORCH_IMAGES_PER_SECOND[r.workload]),
                `${(r.imagesPerSecond / PYTORCH_IMAGES_PER_SECOND[r.workload]).toFixed(2)}×`,
              ]),
            ),
          ].join('\n'),
        );
      },
    );
}
