import {
  computeFeatures,
  evaluateLogits,
  finalClassifier,
  formatPercent,
  forwardProgram,
  type MethodMetrics,
  mapBatches,
  memorySource,
  OUTPUT,
  predict,
} from '@gradfeat/core';
import { ImagePipeline, openDataset, targetsTensor, transformForModel } from '@gradfeat/datasets';
import type { Command } from 'commander';
import { backendOption, loadModel, openBackend } from '../backends.js';
import { createProgress, emit, renderTable } from '../output.js';
import { integerOption, numberList } from '../parse.js';
import { datasetKinds } from '../plugins.js';
import { loadTrainedRun, prepareModel, prepareSplits, withAblatedOmega } from '../workflow.js';

interface EvalFlags {
  readonly model?: string;
  readonly run?: string;
  readonly dataset?: string;
  readonly split: string;
  readonly backend?: string;
  readonly batchSize: number;
  readonly workers?: number;
  readonly mean?: number[];
  readonly std?: number[];
  readonly imageSize?: number;
  readonly json?: boolean;
}

interface Evaluation {
  readonly backend: string;
  readonly rows: readonly { readonly name: string; readonly metrics: MethodMetrics }[];
}

function metricsTable(rows: Evaluation['rows']): string {
  const multiLabel = rows.some((r) => r.metrics.mAP11 !== undefined);
  return renderTable(
    ['model', multiLabel ? 'mAP (VOC07)' : 'top-1', multiLabel ? 'mAP (area)' : 'top-5'],
    rows.map((r) => [
      r.name,
      formatPercent(multiLabel ? r.metrics.mAP11 : r.metrics.top1),
      formatPercent(multiLabel ? r.metrics.mAPArea : r.metrics.top5),
    ]),
  );
}

/** The network's own classifier, as imported: confirms an import and its preprocessing. */
async function evaluateImported(flags: EvalFlags & { model: string; dataset: string }): Promise<Evaluation> {
  const progress = createProgress();
  const backend = await openBackend(flags.backend);
  const network = await loadModel(flags.model);
  const stated = network.metadata?.preprocessing;
  const preprocessing = {
    ...stated,
    ...(flags.mean && { mean: flags.mean }),
    ...(flags.std && { std: flags.std }),
    ...(flags.imageSize && { size: [flags.imageSize, flags.imageSize] as const }),
  };
  if (!preprocessing.size) {
    throw new Error(`${flags.model}: the file states no input size; pass --image-size (and --mean/--std if it needs normalising)`);
  }
  const dataset = await openDataset(flags.dataset, flags.split);
  const targets = await dataset.targets();
  const outputs = network.params.get(finalClassifier(network).params.weight)?.shape[0];
  // The network's own classifier only means something on the classes it was trained for.
  if (targets.classCount !== outputs) {
    throw new Error(
      `${dataset.description} has ${targets.classCount} classes but the network outputs ${outputs}: evaluate it on data of its own classes, or adapt it first (gradfeat compare)`,
    );
  }
  const pipeline = await ImagePipeline.create(dataset, { transform: transformForModel(preprocessing, 'eval'), workers: flags.workers });
  try {
    const logits = await mapBatches(
      backend,
      forwardProgram(network),
      pipeline.sampleSource(),
      flags.batchSize,
      OUTPUT,
      new Map(),
      (done, total) => progress.update('evaluate', done, total),
    );
    progress.finish();
    return {
      backend: backend.name,
      rows: [{ name: flags.model, metrics: evaluateLogits(logits, { targets: targetsTensor(targets) }, 'softmax-ce') }],
    };
  } finally {
    await pipeline.close();
  }
}

/** Every method of a trained run on its test split. */
async function evaluateRun(flags: EvalFlags & { run: string }): Promise<Evaluation> {
  const progress = createProgress();
  const trained = await loadTrainedRun(flags.run);
  const config = { ...trained.config, backend: flags.backend ?? trained.config.backend };
  const prepared = await prepareModel(config);
  const { test, loss } = await prepareSplits(config, prepared, progress);
  const model = withAblatedOmega(config, prepared.model, trained.omegaBar.weight.shape[0]);
  const rows = [];
  for (const [method, state] of trained.states) {
    progress.note(`evaluating ${method}`);
    const source =
      method === 'activation' ? memorySource(await computeFeatures(prepared.backend, prepared.model, test.cut, flags.batchSize)) : test.cut;
    const logits = await predict(prepared.backend, model, method, trained.omegaBar, state.params, source, flags.batchSize);
    rows.push({ name: method, metrics: evaluateLogits(logits, test, loss) });
  }
  progress.finish();
  return { backend: prepared.backend.name, rows };
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description("evaluate a trained run's methods on its test split, or (with --model and no --run) an imported network's own classifier")
    .option('--model <path>', 'a network to evaluate as imported (its own classes and preprocessing)')
    .option('--run <dir>', 'a run directory written by train or compare')
    .option('--dataset <KIND:PATH>', `dataset for --model, KIND one of ${datasetKinds()}`)
    .option('--split <name>', 'split for --model', 'test')
    .addOption(backendOption())
    .option('--batch-size <n>', 'images per batch', integerOption('--batch-size', 1), 128)
    .option('--workers <n>', 'image-decoding threads', integerOption('--workers'))
    .option('--mean <r,g,b>', "input mean after x/255, when the model file doesn't say", numberList('--mean'))
    .option('--std <r,g,b>', "input std after x/255, when the model file doesn't say", numberList('--std'))
    .option('--image-size <n>', 'square input size, when the model file does not say', integerOption('--image-size', 1))
    .option('--json', 'print the metrics as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat eval --model ../shared/models/resnet20-cifar10/resnet20.onnx --dataset folder:/data/cifar-10-jpg --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --image-size 32\n  gradfeat eval --model ../shared/models/mobilenet_v1_0.25_224 --dataset imagenet:/data/ILSVRC2012 --split val\n  gradfeat eval --run runs/r20-layer3.2 --json',
    )
    .action(async (flags: EvalFlags) => {
      let result: Evaluation;
      if (flags.run) result = await evaluateRun({ ...flags, run: flags.run });
      else if (flags.model && flags.dataset) result = await evaluateImported({ ...flags, model: flags.model, dataset: flags.dataset });
      else throw new Error('gradfeat eval needs --run DIR, or --model PATH with --dataset KIND:PATH');
      emit(flags.json === true, { backend: result.backend, results: Object.fromEntries(result.rows.map((r) => [r.name, r.metrics])) }, () =>
        [`backend ${result.backend}`, metricsTable(result.rows)].join('\n'),
      );
    });
}
