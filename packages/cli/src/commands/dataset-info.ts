import { datasetInfo, registeredDatasetFormats } from '@gradfeat/datasets';
import type { Command } from 'commander';
import { emit, renderTable } from '../output.js';
import { datasetFormatsHelp, datasetKinds } from '../plugins.js';

export function registerDatasetInfo(program: Command): void {
  program
    .command('dataset-info')
    .description('count the samples of a dataset split per class, streaming its labels')
    .requiredOption('--dataset <KIND:PATH>', `dataset, KIND one of ${datasetKinds()}`)
    .option(
      '--split <name>',
      `split: ${registeredDatasetFormats()
        .map((format) => `${format.splits?.join('|') ?? 'any name'} (${format.name})`)
        .join(', ')}`,
      'train',
    )
    .option('--json', 'print the counts as JSON')
    .addHelpText('after', () =>
      [
        `\n${datasetFormatsHelp()}`,
        '\nExamples:',
        '  gradfeat dataset-info --dataset cifar10:../shared/data/cifar10/data_batch_1.first4000.bin --json',
        '  gradfeat dataset-info --dataset voc2007:../shared/data/voc2007 --split test',
        '  gradfeat dataset-info --plugin ./my-format.mjs --dataset mine:/data/set',
      ].join('\n'),
    )
    .action(async (options: { dataset: string; split: string; json?: boolean }) => {
      const info = await datasetInfo(options.dataset, options.split);
      const json = { dataset: options.dataset, split: options.split, ...info };
      emit(options.json === true, json, () =>
        [
          `${info.description}: ${info.count.toLocaleString('en-US')} samples, ${info.classNames.length} classes (${info.labelKind})`,
          renderTable(
            ['class', info.labelKind === 'multi-label' ? 'positives' : 'samples'],
            info.classNames.map((name, i) => [name, info.perClassCounts[i].toLocaleString('en-US')]),
          ),
          ...info.warnings.map((warning) => `warning: ${warning}`),
        ].join('\n'),
      );
    });
}
