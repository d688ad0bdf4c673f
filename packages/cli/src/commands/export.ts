import { saveProgramAsOnnx } from '@gradfeat/backend-onnx';
import { deployedProgram, INPUT, METHODS, type Method } from '@gradfeat/core';
import { type Command, Option } from 'commander';
import { emit } from '../output.js';
import { loadTrainedRun, prepareModel, withAblatedOmega } from '../workflow.js';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'write a trained method as a standalone ONNX model: images → logits (trunk, head with its tangent path, w1 and w2 baked in)',
    )
    .requiredOption('--run <dir>', 'a run directory written by train or compare')
    .addOption(new Option('--method <name>', 'which trained method to export').choices(METHODS).default('full'))
    .requiredOption('--output <file.onnx>', 'where to write the model (atomically)')
    .option('--json', 'print what was written as JSON')
    .addHelpText('after', '\nExample:\n  gradfeat export --run runs/r20-layer3.2 --method full --output r20-gradfeat.onnx')
    .action(async (flags: { run: string; method: Method; output: string; json?: boolean }) => {
      const trained = await loadTrainedRun(flags.run);
      const state = trained.states.get(flags.method);
      if (!state)
        throw new Error(`${trained.run.path}: the run did not train '${flags.method}' (it has ${[...trained.states.keys()].join(', ')})`);
      const prepared = await prepareModel(trained.config);
      const model = withAblatedOmega(trained.config, prepared.model, trained.omegaBar.weight.shape[0]);
      const preprocessing = prepared.preprocessing;
      const size = preprocessing.size;
      if (!size) throw new Error(`${trained.run.path}: the run's preprocessing has no input size; set preprocessing.size in its config`);
      const input = model.trunk.inputs[0];
      const saved = await saveProgramAsOnnx(
        deployedProgram(model, flags.method, trained.omegaBar, state.params),
        { [INPUT]: [-1, ...input.shape.slice(1)] },
        flags.output,
      );
      emit(
        flags.json === true,
        { output: flags.output, method: flags.method, ...saved },
        () => `wrote ${flags.output}: ${flags.method} model, input '${INPUT}' [N, ${input.shape.slice(1).join(', ')}], output 'logits'`,
      );
    });
}
