import { checkJvpFixture } from '@gradfeat/core';
import type { Command } from 'commander';
import { backendOption, openBackend } from '../backends.js';
import { emit, renderTable } from '../output.js';
import { numberOption } from '../parse.js';

export function registerCheckFixture(program: Command): void {
  program
    .command('check-fixture')
    .description("compare gradfeat's forward, tangent and backward passes with a PyTorch (functorch.jvp) reference fixture")
    .argument('<dir>', 'fixture directory with manifest.json, e.g. ../shared/fixtures/resnet20-jvp')
    .addOption(backendOption())
    .option('--tolerance <x>', 'largest relative error accepted (max|ours − ref| / max|ref|)', numberOption('--tolerance'), 1e-4)
    .option('--json', 'print the comparison as JSON')
    .addHelpText('after', '\nExample:\n  gradfeat check-fixture ../shared/fixtures/resnet20-jvp --backend onnx --json')
    .action(async (dir: string, options: { backend?: string; tolerance: number; json?: boolean }) => {
      const backend = await openBackend(options.backend);
      const report = await checkJvpFixture(dir, backend, options.tolerance);
      emit(options.json === true, report, () =>
        [
          `fixture ${dir} on ${report.backend} (tolerance ${options.tolerance} relative)`,
          renderTable(
            ['tensor', 'shape', 'max abs error', 'max rel error', 'status'],
            report.comparisons.map((c) => [
              c.tensor,
              `[${c.shape.join(',')}]`,
              c.absoluteError.toExponential(2),
              c.relativeError.toExponential(2),
              c.passed ? 'ok' : 'FAIL',
            ]),
          ),
          report.passed ? 'all tensors within tolerance' : 'some tensors exceed the tolerance',
        ].join('\n'),
      );
      if (!report.passed) process.exitCode = 1;
    });
}
