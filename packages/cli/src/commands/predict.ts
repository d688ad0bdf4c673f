import { formatPercent, METHODS, type Method } from '@gradfeat/core';
import { type Command, Option } from 'commander';
import { backendOption } from '../backends.js';
import { createProgress, emit, renderTable } from '../output.js';
import { integerOption } from '../parse.js';
import { loadTrainedModel, predict } from '../trained-model.js';

interface PredictFlags {
  readonly run?: string;
  readonly model?: string;
  readonly method?: Method;
  readonly input: string[];
  readonly top: number;
  readonly backend?: string;
  readonly batchSize: number;
  readonly workers?: number;
  readonly json?: boolean;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description("classify images with a trained run or an exported model: class names and probabilities, with the run's own preprocessing")
    .option('--run <dir>', 'a run directory written by train or compare')
    .option('--model <file.onnx>', 'a model written by gradfeat export (it states its preprocessing and classes)')
    .addOption(new Option('--method <name>', "the run's method to use (default full)").choices(METHODS))
    .requiredOption(
      '--input <paths...>',
      'JPEG/PNG files or folders (searched recursively); a folder of class folders also reports the accuracy',
    )
    .option('--top <k>', 'classes listed per image', integerOption('--top', 1), 5)
    .addOption(backendOption())
    .option('--batch-size <n>', 'images per batch', integerOption('--batch-size', 1), 64)
    .option('--workers <n>', 'image-decoding threads', integerOption('--workers'))
    .option('--json', 'print the predictions as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat predict --run runs/r20 --input photo.jpg other.png --top 3\n  gradfeat predict --run runs/r20 --method activation --input /data/cifar-10-jpg/test --json\n  gradfeat predict --model r20-gradfeat.onnx --input /data/cifar-10-jpg/test',
    )
    .action(async (flags: PredictFlags) => {
      if ((flags.run === undefined) === (flags.model === undefined))
        throw new Error('gradfeat predict needs either --run DIR or --model FILE.onnx');
      if (flags.model && flags.backend) throw new Error('--backend applies to --run; an exported --model runs in ONNX Runtime');
      const model = await loadTrainedModel((flags.run ?? flags.model) as string, { method: flags.method, backend: flags.backend });
      const progress = createProgress();
      try {
        const result = await predict(model, flags.input, {
          top: flags.top,
          batchSize: flags.batchSize,
          workers: flags.workers,
          onProgress: (done, total) => progress.update('predict', done, total),
        });
        progress.finish();
        const json = {
          model: model.source,
          method: model.method,
          runtime: model.runtime,
          images: result.predictions.length,
          ...(result.accuracy !== undefined && { accuracy: result.accuracy }),
          predictions: result.predictions,
        };
        emit(flags.json === true, json, () =>
          [
            `${model.source} (${model.method}) on ${model.runtime}`,
            renderTable(
              ['image', ...(result.accuracy !== undefined ? ['label'] : []), 'prediction', 'probability', `top ${flags.top}`],
              result.predictions.map((p) => [
                p.file,
                ...(result.accuracy !== undefined ? [p.label ?? ''] : []),
                p.top[0].className,
                formatPercent(p.top[0].probability),
                p.top.map((c) => `${c.className} ${formatPercent(c.probability)}`).join(', '),
              ]),
            ),
            ...(result.accuracy !== undefined
              ? [`top-1 accuracy ${formatPercent(result.accuracy)} on ${result.predictions.length} images`]
              : []),
          ].join('\n'),
        );
      } finally {
        await model.close();
      }
    });
}
