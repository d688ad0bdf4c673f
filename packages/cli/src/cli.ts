import { Command } from 'commander';
import { registerBench } from './commands/bench.js';
import { registerCheckFixture } from './commands/check-fixture.js';
import { registerCompare } from './commands/compare.js';
import { registerDatasetInfo } from './commands/dataset-info.js';
import { registerDemo } from './commands/demo.js';
import { registerEval } from './commands/eval.js';
import { registerExport } from './commands/export.js';
import { registerExtract } from './commands/extract.js';
import { registerInfo } from './commands/info.js';
import { registerPredict } from './commands/predict.js';
import { registerTrain } from './commands/train.js';
import { registerWorker } from './commands/worker.js';
import { commandLinePlugins, loadPlugins, PLUGINS_ENV_VAR, registeredSummary, withPluginHint } from './plugins.js';
import { GRADFEAT_VERSION } from './version.js';

/**
 * The gradfeat command line: each command registers itself from its own module. Help and choices list
 * the plugins registered when it is created (`main` loads them first).
 */
export function createCli(): Command {
  const program = new Command('gradfeat')
    .description('gradients as features: adapt pre-trained networks with linearised heads (Mu, Liang & Li, ICLR 2020)')
    .version(GRADFEAT_VERSION)
    // Read by `main` before the commands are built (see pluginArguments); declared here for help and parsing.
    .option('--plugin <module-or-path>', `load a plugin module (a path or an installed package); repeatable, and see ${PLUGINS_ENV_VAR}`)
    .addHelpText(
      'after',
      () => `\n${registeredSummary()}\n\nExample:\n  gradfeat --plugin ./my-format.mjs dataset-info --dataset mine:/data/set`,
    )
    .showHelpAfterError();
  for (const register of [
    registerDemo,
    registerInfo,
    registerDatasetInfo,
    registerExtract,
    registerTrain,
    registerCompare,
    registerEval,
    registerExport,
    registerPredict,
    registerBench,
    registerCheckFixture,
    registerWorker,
  ])
    register(program);
  return program;
}

/**
 * Runs the command line on `argv` (as `process.argv`) after loading the plugins it names (and the
 * installed first-party ones); errors are printed and set the exit code to 1.
 */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await loadPlugins(commandLinePlugins(argv));
    await createCli().parseAsync([...argv]);
  } catch (error) {
    process.stderr.write(`gradfeat: error: ${withPluginHint(error)}\n`);
    if (process.env.GRADFEAT_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    process.exitCode = 1;
  }
}
