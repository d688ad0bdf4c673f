/**
 * Collects the experiments' run directories into one Markdown table (test top-1, training time).
 *   npx tsx experiments/mobilenet-cifar10/summarise.ts RUNS_DIR
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const EXPERIMENTS: readonly (readonly [string, string])[] = [
  ['1-last-block', '1: θ2 = last block (conv_dw_13 + conv_pw_13), 4 epochs'],
  ['2-last-two-blocks', '2: θ2 = last two blocks (from conv_dw_12), 2 epochs'],
  ['3-random-theta1', '3: as 1, random θ1 (trunk)'],
  ['3-random-theta2', '3: as 1, random θ2 in the gradient term'],
  ['3-random-omega', '3: as 1, random ω in the gradient term'],
  ['4-standard-coordinates', '4: as 1, θ2 in standard coordinates'],
];
const METHODS = ['activation', 'gradient', 'full', 'finetune'] as const;

const runs = process.argv[2];
if (!runs) throw new Error('usage: summarise.ts RUNS_DIR');
const cell = (m: { top1: number; trainSeconds: number } | undefined) =>
  m ? `${(m.top1 * 100).toFixed(2)} % (${Math.round(m.trainSeconds)} s)` : '—';
const lines = ['| experiment | activation | gradient | full | fine-tuning |', '| --- | ---: | ---: | ---: | ---: |'];
for (const [dir, label] of EXPERIMENTS) {
  const file = join(runs, dir, 'metrics.json');
  if (!existsSync(file)) {
    lines.push(`| ${label} | not run | — | — | — |`);
    continue;
  }
  const methods = JSON.parse(readFileSync(file, 'utf8')).methods as { method: string; top1: number; trainSeconds: number }[];
  lines.push(`| ${label} | ${METHODS.map((name) => cell(methods.find((m) => m.method === name))).join(' | ')} |`);
}
console.log(lines.join('\n'));
