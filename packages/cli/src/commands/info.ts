import { loadNetwork, summariseNetwork } from '@gradfeat/core';
import type { Command } from 'commander';
import { emit, renderTable } from '../output.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('describe a model: inputs, parameters, multiply-adds, where it can be cut and the preprocessing it expects')
    .requiredOption('--model <path>', 'an .onnx file or a TF.js layers model (model.json or its directory)')
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat info --model ../shared/models/resnet20-cifar10/resnet20.onnx\n  gradfeat info --model ../shared/models/mobilenet_v1_0.25_224 --json',
    )
    .action(async (options: { model: string; json?: boolean }) => {
      const summary = summariseNetwork(await loadNetwork(options.model));
      emit(options.json === true, summary, () => {
        const p = summary.preprocessing;
        const preprocessing = !p
          ? 'not stated in the file'
          : [
              p.mean && `mean ${p.mean.join(', ')}`,
              p.std && `std ${p.std.join(', ')}`,
              p.scale !== undefined && `x·${p.scale}${p.offset !== undefined ? ` + ${p.offset}` : ''}`,
              p.size && `${p.size.join('×')}`,
              p.sourceLayout && `source layout ${p.sourceLayout}`,
            ]
              .filter(Boolean)
              .join('; ');
        return [
          `model        ${options.model}`,
          `inputs       ${summary.inputs.map((i) => `${i.name} [${i.shape.join(', ')}] NCHW`).join(', ')}`,
          `parameters   ${summary.parameters.toLocaleString('en-US')}`,
          `mult-adds    ${summary.multiplyAddsPerImage.toLocaleString('en-US')} per image`,
          `classes      ${summary.classes ?? '—'}`,
          `preprocess   ${preprocessing}`,
          ...(summary.notes ?? []).map((note) => `note         ${note}`),
          '',
          'cut points (θ2 = everything after the cut, BatchNorm folded):',
          renderTable(
            ['cut at', 'op', 'output shape', 'θ2 parameters'],
            summary.cutPoints.map((c) => [c.name, c.op, `[${c.shape.join(', ')}]`, c.headParameters.toLocaleString('en-US')]),
          ),
        ].join('\n');
      });
    });
}
