import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VOC_CLASSES } from '@gradfeat/datasets';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { runCli } from './run-cli.js';

let root = '';

/** A tiny VOC 2007 devkit: 30 trainval and 12 test images, each with 1–2 objects (some difficult). */
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gradfeat-voc-'));
  const base = join(root, 'VOCdevkit', 'VOC2007');
  for (const folder of ['Annotations', 'JPEGImages', join('ImageSets', 'Main')]) await mkdir(join(base, folder), { recursive: true });
  const ids: string[] = [];
  for (let i = 0; i < 42; i++) {
    const id = String(i + 1).padStart(6, '0');
    ids.push(id);
    const names = [VOC_CLASSES[i % 4], VOC_CLASSES[4 + (i % 3)]];
    const objects = names
      .map(
        (name, k) =>
          `<object><name>${name}</name><difficult>${k === 1 && i % 5 === 0 ? 1 : 0}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>`,
      )
      .join('');
    await writeFile(
      join(base, 'Annotations', `${id}.xml`),
      `<annotation><size><width>40</width><height>30</height><depth>3</depth></size>${objects}</annotation>`,
    );
    const background = { r: (i % 4) * 60, g: (i % 3) * 80, b: 120 };
    await writeFile(
      join(base, 'JPEGImages', `${id}.jpg`),
      await sharp({ create: { width: 40, height: 30, channels: 3, background } })
        .jpeg()
        .toBuffer(),
    );
  }
  await writeFile(join(base, 'ImageSets', 'Main', 'trainval.txt'), `${ids.slice(0, 30).join('\n')}\n`);
  await writeFile(join(base, 'ImageSets', 'Main', 'test.txt'), `${ids.slice(30).join('\n')}\n`);
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describeWithShared('gradfeat compare on multi-label VOC 2007 data', () => {
  it('trains with the masked sigmoid loss and reports VOC07 and area mAP', async () => {
    const out = join(root, 'run');
    const run = await runCli([
      'compare',
      '--model',
      sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx'),
      '--dataset',
      `voc2007:${root}`,
      '--train-split',
      'trainval',
      '--cut',
      'layer3.1',
      '--mean',
      '0.485,0.456,0.406',
      '--std',
      '0.229,0.224,0.225',
      '--image-size',
      '32',
      '--epochs',
      '2',
      '--batch-size',
      '8',
      '--out',
      out,
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    for (const method of ['activation', 'gradient', 'full', 'finetune']) {
      expect(result.methods[method].mAP11).toBeGreaterThan(0);
      expect(result.methods[method].mAP11).toBeLessThanOrEqual(1);
      expect(result.methods[method].mAPArea).toBeGreaterThan(0);
      expect(result.methods[method].top1).toBeUndefined();
    }
    expect(await readFile(join(out, 'report.md'), 'utf8')).toMatch(/mAP/);
  });
});
