import { formatPreprocessing, summariseNetwork } from '@gradfeat/core';
import type { Command } from 'commander';
import { loadModel } from '../backends.js';
import { EXPORT_KEY, parseExportDescription } from '../export-metadata.js';
import { emit, renderTable } from '../output.js';

/** A file `gradfeat export` wrote: what its metadata says (its graph is ONNX Runtime's, not gradfeat's IR). */
async function describeGradfeatExport(path: string, json: boolean): Promise<boolean> {
  if (!path.toLowerCase().endsWith('.onnx')) return false;
  const { modelMetadata, readOnnxModelInfo } = await import('@gradfeat/backend-onnx');
  const info = await readOnnxModelInfo(path);
  const described = info.metadata.get(EXPORT_KEY);
  if (described === undefined) return false;
  const description = parseExportDescription(described, path);
  const { preprocessing, classNames } = modelMetadata(path, info.metadata);
  const summary = { model: path, gradfeatExport: description, inputs: info.inputs, outputs: info.outputs, preprocessing, classNames };
  emit(json, summary, () =>
    [
      `model        ${path} (written by gradfeat ${description.version} export)`,
      `method       ${description.method}, cut at ${description.cut} of ${description.sourceModel}`,
      `θ2           ${description.theta2Size.toLocaleString('en-US')} values, ${description.parametrisation} coordinates`,
      `inputs       ${info.inputs.map((i) => `${i.name} [${i.dims.join(', ')}] NCHW`).join(', ')}`,
      `outputs      ${info.outputs.join(', ')}`,
      `classes      ${classNames?.length ?? '—'}: ${classNames?.join(', ') ?? ''}`,
      `preprocess   ${formatPreprocessing(preprocessing)}; ${description.testCrop === 'ten-crop' ? 'ten crops' : 'centre crop'}${description.resizeShorter ? ` after resizing the shorter side to ${description.resizeShorter}` : ''}`,
      `run          ${description.run}`,
    ].join('\n'),
  );
  return true;
}

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
      if (await describeGradfeatExport(options.model, options.json === true)) return;
      const summary = summariseNetwork(await loadModel(options.model));
      emit(options.json === true, summary, () => {
        const preprocessing = formatPreprocessing(summary.preprocessing);
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
