import { formatPercent, runTransferDemo } from '@gradfeat/core';
import type { Command } from 'commander';
import { backendOption, openBackend } from '../backends.js';
import { loadMnistDigits } from '../mnist.js';
import { createProgress, emit, renderTable, seconds } from '../output.js';
import { integerOption } from '../parse.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('pre-train a small CNN on MNIST digits 0–4, then adapt it to digits 5–9 with all four methods (offline, about a minute)')
    .addOption(backendOption())
    .option('--seed <n>', 'random seed', integerOption('--seed'), 1)
    .option('--target-train <n>', 'training images of the target task', integerOption('--target-train'), 2000)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  gradfeat demo --json\n  gradfeat demo --backend tfjs --seed 2')
    .action(async (options: { backend?: string; seed: number; targetTrain: number; json?: boolean }) => {
      const started = performance.now();
      const backend = await openBackend(options.backend);
      const progress = createProgress();
      progress.note(`backend: ${backend.name}`, { backend: backend.name });
      const { images, labels } = loadMnistDigits();
      const result = await runTransferDemo({
        backend,
        images,
        labels,
        sourceClasses: [0, 1, 2, 3, 4],
        targetClasses: [5, 6, 7, 8, 9],
        targetTrainCount: options.targetTrain,
        seed: options.seed,
        events: {
          onPhase: (phase) => progress.note(`phase: ${phase}`, { phase }),
          onPretrainStep: (info) => progress.update('pretext', info.step, info.totalSteps, { loss: info.loss }),
          onStep: (method, info) => progress.update(method, info.step, info.totalSteps, { loss: info.loss }),
        },
      });
      progress.finish();
      const methods = Object.fromEntries(
        result.results.map((r) => [r.method, { accuracy: r.metrics.top1, trainSeconds: r.trainSeconds, finalLoss: r.finalLoss }]),
      );
      const json = {
        methods,
        backend: backend.name,
        task: {
          pretext: `MNIST digits ${result.pretext.classes.join(',')}`,
          target: `MNIST digits ${result.target.classes.join(',')}`,
          pretextTestAccuracy: result.pretext.testTop1,
          pretextSeconds: result.pretext.seconds,
          targetTrain: result.target.trainCount,
          targetTest: result.target.testCount,
        },
        network: result.network,
        configs: result.configs,
        seed: options.seed,
        totalSeconds: (performance.now() - started) / 1000,
      };
      emit(options.json === true, json, () =>
        [
          `gradfeat demo on ${backend.name}: small CNN pre-trained on ${json.task.pretext} (test accuracy ${formatPercent(result.pretext.testTop1)}, ${seconds(result.pretext.seconds)}),`,
          `adapted to ${json.task.target} with ${result.target.trainCount} training / ${result.target.testCount} test images; θ2 = block4 (${result.network.theta2Parameters} parameters).`,
          '',
          renderTable(
            ['method', 'accuracy', 'train time'],
            result.results.map((r) => [r.method, formatPercent(r.metrics.top1), seconds(r.trainSeconds)]),
          ),
        ].join('\n'),
      );
    });
}
