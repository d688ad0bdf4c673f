import { formatPercent, type MethodResult, theta2Size } from '@gradfeat/core';
import type { Command } from 'commander';
import { coordinate } from '../cluster.js';
import type { RunConfig } from '../config.js';
import { createProgress, emit, renderTable, seconds } from '../output.js';
import { addRunOptions, methodsOption, type RunFlags, resolveRunFlags } from '../run-options.js';
import { openRun, PhaseClock, type PreparedSplits, prepareModel, prepareSplits, runMethods } from '../workflow.js';

/** The table both `train` and `compare` print. */
export function resultsTable(results: readonly MethodResult[]): string {
  const multiLabel = results.some((r) => r.metrics.mAP11 !== undefined);
  return renderTable(
    multiLabel
      ? ['method', 'mAP (VOC07)', 'mAP (area)', 'weight decay', 'train time']
      : ['method', 'top-1', 'top-5', 'weight decay', 'train time'],
    results.map((r) => [
      r.method,
      formatPercent(multiLabel ? r.metrics.mAP11 : r.metrics.top1),
      formatPercent(multiLabel ? r.metrics.mAPArea : r.metrics.top5),
      String(r.weightDecay),
      seconds(r.trainSeconds),
    ]),
  );
}

/** Extract (or reuse) the caches, train `methods`, write the run directory's reports, print the table. */
export async function trainAndReport(config: RunConfig, options: { resume?: boolean; json?: boolean; redis?: string }): Promise<void> {
  const progress = createProgress();
  // The model and cut are checked before the run directory is written, so a typo leaves nothing behind.
  const prepared = await prepareModel(config);
  const run = await openRun(config, options.resume === true);
  progress.note(`backend: ${prepared.backend.name}; run directory: ${run.path}`, { backend: prepared.backend.name, run: run.path });
  const cluster = options.redis ? await coordinate(options.redis, config, prepared, progress) : undefined;
  const clock = new PhaseClock();
  let splits: PreparedSplits;
  let results: MethodResult[];
  try {
    clock.start('extract');
    splits = await prepareSplits(config, prepared, progress, cluster?.runners);
    results = await runMethods(config, prepared, splits, run, progress, options.resume === true, clock, cluster);
  } finally {
    await cluster?.close();
  }
  clock.stop();
  progress.finish();
  const context = {
    model: config.model,
    cut: config.cut,
    dataset: `${config.dataset} (${config.splits.train} ${splits.train.targets.shape[0]} / ${config.splits.test} ${splits.test.targets.shape[0]})`,
    seed: config.seed,
    backend: prepared.backend.name,
  };
  const files = await run.writeResults(results, context, {
    extra: {
      parametrisation: config.parametrisation,
      theta2Parameters: theta2Size(prepared.model),
      weightDecays: Object.fromEntries(results.map((r) => [r.method, { chosen: r.weightDecay, sweep: r.weightDecaySweep }])),
      phaseSeconds: clock.seconds,
    },
  });
  const json = {
    run: run.path,
    backend: prepared.backend.name,
    methods: Object.fromEntries(
      results.map((r) => [r.method, { ...r.metrics, weightDecay: r.weightDecay, trainSeconds: r.trainSeconds, finalLoss: r.finalLoss }]),
    ),
    phaseSeconds: clock.seconds,
    files,
  };
  emit(options.json === true, json, () =>
    [
      `${config.model} cut at ${config.cut} on ${context.dataset}, ${prepared.backend.name}`,
      resultsTable(results),
      '',
      `wall time by phase: ${Object.entries(clock.seconds)
        .map(([phase, s]) => `${phase} ${seconds(s)}`)
        .join(', ')}`,
      `reports: ${files.report}, ${files.metrics}, ${files.curves}`,
    ].join('\n'),
  );
}

export function registerCompare(program: Command): void {
  addRunOptions(
    program
      .command('compare')
      .description("the paper's comparison on one cut: activation (→ ω̄), then gradient, full and fine-tuning; writes a report directory"),
  )
    .addOption(methodsOption())
    .option('--resume', 'continue the run in --out from its checkpoints')
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat compare --model resnet20.onnx --dataset cifar10:/data/cifar-10-batches-bin --cut layer3.1 \\\n    --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --out runs/r20-layer3.2\n  gradfeat compare --config /shared/run.yaml --out /shared/runs/r18 --redis redis://10.0.0.5:6379   # on workers (gradfeat worker)',
    )
    .action(async (flags: RunFlags & { resume?: boolean; json?: boolean }) => {
      await trainAndReport(await resolveRunFlags(flags), flags);
    });
}
