import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, hasShared, sharedPath } from '../../../test-support/shared.js';
import { runCli } from './run-cli.js';
import { RECORD } from './small-cifar.js';

let root = '';
let broken = '';

/** folder:root with train/ and test/ splits of two classes of real CIFAR-10 pictures as PNGs, and one broken file. */
beforeAll(async () => {
  if (!hasShared) return;
  root = mkdtempSync(join(tmpdir(), 'gradfeat-bad-images-'));
  const sharp = (await import('sharp')).default;
  const records = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
  let record = 0;
  for (const [split, perClass] of [
    ['train', 8],
    ['test', 4],
  ] as const) {
    for (const label of ['cat', 'dog']) {
      mkdirSync(join(root, split, label), { recursive: true });
      for (let i = 0; i < perClass; i++, record++) {
        const planes = records.subarray(record * RECORD + 1, (record + 1) * RECORD);
        const pixels = Buffer.alloc(3072);
        for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) pixels[3 * p + c] = planes[c * 1024 + p];
        const png = await sharp(pixels, { raw: { width: 32, height: 32, channels: 3 } })
          .png()
          .toBuffer();
        writeFileSync(join(root, split, label, `${i}.png`), png);
      }
    }
  }
  broken = join(root, 'train', 'cat', 'broken.png');
  writeFileSync(broken, 'not a picture');
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

const args = (out: string) => [
  '--model',
  sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx'),
  '--dataset',
  `folder:${root}`,
  '--cut',
  'layer3.1',
  '--image-size',
  '32',
  '--out',
  out,
];

describeWithShared('--skip-bad-images', () => {
  it('without it, a bad image stops the run naming the file and the option that skips it', async () => {
    const run = await runCli(['extract', ...args(join(root, 'strict'))]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${broken}: cannot decode image: neither JPEG nor PNG`);
    expect(run.stderr).toContain('--skip-bad-images');
  });

  it('with it, each skipped file is logged and counted in the results and the report', async () => {
    const out = join(root, 'lenient');
    const run = await runCli(['compare', ...args(out), '--skip-bad-images', '--methods', 'activation', '--epochs', '1', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const skipped = run.stderr.split('\n').filter((line) => line.includes('"skipped"'));
    expect(skipped.map((line) => JSON.parse(line).message)).toEqual([`skipped ${broken}: cannot decode image: neither JPEG nor PNG`]);
    expect(JSON.parse(run.stdout).skippedImages).toEqual({ train: 1, test: 0 });
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).skippedImages).toEqual({ train: 1, test: 0 });
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('1 bad image skipped');
  });
});
