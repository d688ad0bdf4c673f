import { METHODS, type Method } from '@gradfeat/core';
import { type Command, Option } from 'commander';
import { addRunOptions, type RunFlags, resolveRunFlags } from '../run-options.js';
import { trainAndReport } from './compare.js';

export function registerTrain(program: Command): void {
  addRunOptions(
    program.command('train').description('train one method (the activation baseline first, as it gives ω̄) and write its run directory'),
  )
    .addOption(new Option('--method <name>', 'the method to train').choices(METHODS).makeOptionMandatory())
    .option(
      '--resume',
      'continue the run in --out from its checkpoints (same final numbers as an uninterrupted run); with --lr, at that learning rate (recorded)',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  gradfeat train --config run.yaml --method full --out runs/full\n  gradfeat train --config run.yaml --method full --out runs/full --resume\n  gradfeat train --config /shared/run.yaml --method full --optimiser lbfgs --out /shared/runs/full --redis redis://10.0.0.5:6379',
    )
    .action(async (flags: RunFlags & { method: Method; resume?: boolean; json?: boolean }) => {
      await trainAndReport(await resolveRunFlags({ ...flags, methods: [flags.method] }), { ...flags, command: 'gradfeat train' });
    });
}
