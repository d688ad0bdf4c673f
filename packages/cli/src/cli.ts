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
import { GRADFEAT_VERSION } from './version.js';

/** The gradfeat command line: each command registers itself from its own module. */
export function createCli(): Command {
  const program = new Command('gradfeat')
    .description('gradients as features: adapt pre-trained networks with linearised heads (Mu, Liang & Li, ICLR 2020)')
    .version(GRADFEAT_VERSION)
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

/** Runs the command line on `argv` (as `process.argv`); errors are printed and set the exit code to 1. */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await createCli().parseAsync([...argv]);
  } catch (error) {
    process.stderr.write(`gradfeat: error: ${(error as Error).message}\n`);
    if (process.env.GRADFEAT_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
    process.exitCode = 1;
  }
}
