import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HostTensor, meanAveragePrecision, Rng } from '@gradfeat/core';
import { VOC_CLASSES } from '@gradfeat/datasets';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { runCli } from './run-cli.js';

let root = '';

/** The labels of the test images below (1 positive, 0 negative, −1 difficult), as [image, class]. */
function testTruth(): HostTensor {
  const classes = VOC_CLASSES.length;
  const truth = new Float32Array(TEST_IMAGES * classes);
  for (let row = 0; row < TEST_IMAGES; row++) {
    const { names, difficult } = objectsOf(TRAINVAL_IMAGES + row);
    names.forEach((name, k) => {
      truth[row * classes + VOC_CLASSES.indexOf(name)] = difficult[k] ? -1 : 1;
    });
  }
  return { shape: [TEST_IMAGES, classes], data: truth };
}

/** The mean AP that random scores reach on average (seeded), under both definitions. */
function chanceMeanAP(truth: HostTensor, trials: number): { voc07: number; area: number } {
  const rng = new Rng(5);
  let voc07 = 0;
  let area = 0;
  for (let t = 0; t < trials; t++) {
    const scores = { shape: truth.shape, data: Float32Array.from(truth.data, () => rng.uniform()) };
    voc07 += meanAveragePrecision(scores, truth, 'voc07').mean / trials;
    area += meanAveragePrecision(scores, truth, 'area').mean / trials;
  }
  return { voc07, area };
}

/** Image i's two objects (a class from each of two groups) and which of them are marked difficult. */
function objectsOf(i: number): { names: string[]; difficult: boolean[] } {
  return { names: [VOC_CLASSES[i % 4], VOC_CLASSES[4 + (i % 3)]], difficult: [false, i % 5 === 0] };
}

const TRAINVAL_IMAGES = 30;
const TEST_IMAGES = 12;

/** A tiny VOC 2007 devkit: 30 trainval and 12 test images, each with 1–2 objects (some difficult). */
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gradfeat-voc-'));
  const base = join(root, 'VOCdevkit', 'VOC2007');
  for (const folder of ['Annotations', 'JPEGImages', join('ImageSets', 'Main')]) await mkdir(join(base, folder), { recursive: true });
  const ids: string[] = [];
  for (let i = 0; i < TRAINVAL_IMAGES + TEST_IMAGES; i++) {
    const id = String(i + 1).padStart(6, '0');
    ids.push(id);
    const { names, difficult } = objectsOf(i);
    const objects = names
      .map(
        (name, k) =>
          `<object><name>${name}</name><difficult>${difficult[k] ? 1 : 0}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>`,
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
  await writeFile(join(base, 'ImageSets', 'Main', 'trainval.txt'), `${ids.slice(0, TRAINVAL_IMAGES).join('\n')}\n`);
  await writeFile(join(base, 'ImageSets', 'Main', 'test.txt'), `${ids.slice(TRAINVAL_IMAGES).join('\n')}\n`);
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
    // The image colours encode both labels, so every method ranks the test images well above chance
    // (random scores average 0.44 mAP here, standard deviation 0.06; the methods reach 0.56-0.67).
    const chance = chanceMeanAP(testTruth(), 2000);
    for (const method of ['activation', 'gradient', 'full', 'finetune']) {
      expect(result.methods[method].mAP11, method).toBeGreaterThan(chance.voc07 + 0.1);
      expect(result.methods[method].mAP11, method).toBeLessThanOrEqual(1);
      expect(result.methods[method].mAPArea, method).toBeGreaterThan(chance.area + 0.1);
      expect(result.methods[method].top1).toBeUndefined();
    }
    expect(await readFile(join(out, 'report.md'), 'utf8')).toMatch(/mAP/);
  });
});
