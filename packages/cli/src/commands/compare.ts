import { formatPercent, type MethodResult, type RunDirectory, theta2Size } from '@gradfeat/core';
import type { Command } from 'commander';
import { coordinate } from '../cluster.js';
import type { RunConfig } from '../config.js';
import { createProgress, emit, type Progress, renderTable, seconds } from '../output.js';
import { addRunOptions, methodsOption, type RunFlags, resolveRunFlags } from '../run-options.js';
import {
  checkTestSplit,
  openRun,
  PhaseClock,
  type PreparedModel,
  type PreparedSplits,
  prepareModel,
  prepareSplits,
  runMethods,
  skippedImages,
} from '../workflow.js';

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
export async function trainAndReport(
  requested: RunConfig,
  options: { command: string; resume?: boolean; json?: boolean; lr?: number; redis?: string },
): Promise<void> {
  const progress = createProgress();
  // The model, cut, preprocessing and splits are checked before the run directory is written, so a
  // mistake leaves nothing behind and the corrected command is not refused as a different run.
  const prepared = await prepareModel(requested);
  const testedOnTrainingSplit = await checkTestSplit(requested);
  const { run, config, changes, release } = await openRun(requested, {
    command: options.command,
    resume: options.resume === true,
    learningRateGiven: options.lr !== undefined,
  });
  try {
    for (const change of changes) {
      progress.note(
        `learning rate of '${change.method}' changed from ${change.from} to ${change.to} from step ${change.fromStep} on (recorded in config.json)`,
        { learningRateChange: change },
      );
    }
    await trainInRun(config, prepared, run, progress, { ...options, testedOnTrainingSplit });
  } finally {
    await release();
  }
}

async function trainInRun(
  config: RunConfig,
  prepared: PreparedModel,
  run: RunDirectory,
  progress: Progress,
  options: { resume?: boolean; json?: boolean; redis?: string; testedOnTrainingSplit: boolean },
): Promise<void> {
  progress.note(`backend: ${prepared.backend.name}; run directory: ${run.path}`, { backend: prepared.backend.name, run: run.path });
  const warning = options.testedOnTrainingSplit
    ? `the test split reads the training images: the accuracies below are training accuracies, not held-out ones`
    : undefined;
  if (warning) progress.note(`warning: ${warning}`, { warning });
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
  const skipped = {
    [config.splits.train]: skippedImages(splits.train).length,
    [config.splits.test]: skippedImages(splits.test).length,
  };
  const skippedInAll = skippedImages(splits.train).length + skippedImages(splits.test).length;
  const context = {
    model: config.model,
    cut: config.cut,
    dataset: `${config.dataset} (${config.splits.train} ${splits.train.targets.shape[0]} / ${config.splits.test} ${splits.test.targets.shape[0]}${
      skippedInAll > 0 ? `; ${skippedInAll} bad image${skippedInAll > 1 ? 's' : ''} skipped` : ''
    })`,
    seed: config.seed,
    backend: prepared.backend.name,
    ...(warning && { settings: { 'test data': `the training split (${warning})` } }),
  };
  const files = await run.writeResults(results, context, {
    extra: {
      ...(config.learningRateChanges && { learningRateChanges: config.learningRateChanges }),
      skippedImages: skipped,
      parametrisation: config.parametrisation,
      theta2Parameters: theta2Size(prepared.model),
      weightDecays: Object.fromEntries(results.map((r) => [r.method, { chosen: r.weightDecay, sweep: r.weightDecaySweep }])),
      phaseSeconds: clock.seconds,
    },
  });
  const json = {
    ...(warning && { warning }),
    run: run.path,
    backend: prepared.backend.name,
    skippedImages: skipped,
    methods: Object.fromEntries(
      results.map((r) => [r.method, { ...r.metrics, weightDecay: r.weightDecay, trainSeconds: r.trainSeconds, finalLoss: r.finalLoss }]),
    ),
    phaseSeconds: clock.seconds,
    files,
  };
  emit(options.json === true, json, () =>
    [
      `${config.model} cut at ${config.cut} on ${context.dataset}, ${prepared.backend.name}`,
      ...(warning ? [`WARNING: ${warning}`] : []),
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
    .option('--resume', 'continue the run in --out from its checkpoints; with --lr, at that learning rate (the change is recorded)')
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat compare --model resnet20.onnx --dataset cifar10:/data/cifar-10-batches-bin --cut layer3.1 \\\n    --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --image-size 32 --out runs/r20-layer3.2\n  gradfeat compare --config run.yaml --dataset cifar10:data_batch_1.bin --test-on-training-split --out runs/train-accuracy\n  gradfeat compare --config run.yaml --out runs/r20-layer3.2 --resume --lr 1e-4   # after a divergence\n  gradfeat compare --config /shared/run.yaml --out /shared/runs/r18 --redis redis://10.0.0.5:6379   # on workers (gradfeat worker)',
    )
    .action(async (flags: RunFlags & { resume?: boolean; json?: boolean }) => {
      await trainAndReport(await resolveRunFlags(flags), { ...flags, command: 'gradfeat compare' });
    });
}
