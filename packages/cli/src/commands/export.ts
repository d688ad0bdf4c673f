import { deployedProgram, formatSignatureShape, INPUT, LOGITS, METHODS, type Method, theta2Size, writeFileAtomic } from '@gradfeat/core';
import { openDataset } from '@gradfeat/datasets';
import { type Command, Option } from 'commander';
import { describeExport, EXPORT_KEY } from '../export-metadata.js';
import { emit } from '../output.js';
import { encodeSafetensors } from '../safetensors.js';
import { loadTrainedRun, prepareModel, withAblatedOmega } from '../workflow.js';

const FORMATS = ['onnx', 'safetensors'] as const;
type ExportFormat = (typeof FORMATS)[number];

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'write a trained method as a standalone ONNX model (images → logits, with its preprocessing, classes and method in the metadata), or its trained tensors as safetensors',
    )
    .requiredOption('--run <dir>', 'a run directory written by train or compare')
    .addOption(new Option('--method <name>', 'which trained method to export').choices(METHODS).default('full'))
    .requiredOption('--output <file>', 'where to write the file (atomically)')
    .addOption(
      new Option(
        '--format <format>',
        'onnx: the whole model, images → logits; safetensors: the trained tensors (w1, b1, w2 or θ2) for PyTorch/JAX',
      )
        .choices(FORMATS)
        .default('onnx'),
    )
    .option('--json', 'print what was written as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat export --run runs/r20-layer3.2 --method full --output r20-gradfeat.onnx\n  gradfeat export --run runs/r20-layer3.2 --method full --format safetensors --output r20-full.safetensors',
    )
    .action(async (flags: { run: string; method: Method; output: string; format: ExportFormat; json?: boolean }) => {
      const trained = await loadTrainedRun(flags.run);
      const state = trained.states.get(flags.method);
      if (!state)
        throw new Error(`${trained.run.path}: the run did not train '${flags.method}' (it has ${[...trained.states.keys()].join(', ')})`);
      const { config } = trained;
      const prepared = await prepareModel(config);
      const model = withAblatedOmega(config, prepared.model, trained.omegaBar.weight.shape[0]);
      const { classNames } = await openDataset(config.dataset, config.splits.train);
      const description = describeExport({
        method: flags.method,
        cut: config.cut,
        theta2Size: theta2Size(model),
        parametrisation: config.parametrisation,
        sourceModel: config.model,
        run: trained.run.path,
        testCrop: config.testCrop,
        ...(config.preprocessing?.resizeShorter !== undefined && { resizeShorter: config.preprocessing.resizeShorter }),
      });
      // The exported graph takes NCHW input whatever layout the source model had.
      const { sourceLayout: _, ...preprocessing } = prepared.preprocessing;
      const { PREPROCESSING_KEY, CLASS_NAMES_KEY, saveProgramAsOnnx } = await import('@gradfeat/backend-onnx');
      const metadata = {
        [EXPORT_KEY]: JSON.stringify(description),
        [PREPROCESSING_KEY]: JSON.stringify(preprocessing),
        [CLASS_NAMES_KEY]: JSON.stringify(classNames),
      };
      if (flags.format === 'safetensors') {
        const omega = model.gradientTermClassifier ?? trained.omegaBar;
        // θ2's scales turn the stored (trained) coordinates into the network's: effective = stored × scale.
        const scales = Object.fromEntries(model.scales);
        const tensors = new Map([...state.params, ['omega_bar.weight', omega.weight], ['omega_bar.bias', omega.bias]]);
        const bytes = encodeSafetensors(tensors, { ...metadata, scales: JSON.stringify(scales) });
        await writeFileAtomic(flags.output, bytes);
        emit(
          flags.json === true,
          { output: flags.output, format: flags.format, ...description, tensors: [...tensors.keys()], bytes: bytes.byteLength },
          () => `wrote ${flags.output}: ${flags.method} tensors ${[...tensors.keys()].join(', ')} (${config.parametrisation} coordinates)`,
        );
        return;
      }
      const program = deployedProgram(model, flags.method, trained.omegaBar, state.params);
      const saved = await saveProgramAsOnnx(program, flags.output, {
        metadata,
        docString: `gradfeat ${description.version}: the '${flags.method}' model of run ${trained.run.path}`,
      });
      emit(
        flags.json === true,
        { output: flags.output, format: flags.format, ...description, ...saved },
        () =>
          `wrote ${flags.output}: ${flags.method} model, input '${INPUT}' ${formatSignatureShape(program.inputs[INPUT])}, output '${LOGITS}'`,
      );
    });
}
