import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { ImagePipeline } from '../src/pipeline.js';
import { datasetInfo } from '../src/spec.js';
import { targetAt } from '../src/targets.js';
import type { ImageDataset } from '../src/types.js';
import { openVoc2007, parseVocAnnotation, VOC_CLASSES } from '../src/voc.js';
import { temporaryDirectory } from './helpers.js';

/** Positive images per class in VOC 2007 trainval, as published in the devkit's statistics table. */
const PUBLISHED_TRAINVAL_IMAGES = [238, 243, 330, 181, 244, 186, 713, 337, 445, 141, 200, 421, 287, 245, 2008, 245, 96, 229, 261, 256];

async function classesOf(dataset: ImageDataset, id: string): Promise<{ positive: string[]; difficult: string[] }> {
  const targets = await dataset.targets();
  const index = (await dataset.images([...Array(dataset.length).keys()])).findIndex(
    (ref) => 'path' in ref && ref.path.endsWith(`/${id}.jpg`),
  );
  const target = targetAt(targets, index);
  if (!('positive' in target)) throw new Error('VOC is multi-label');
  const names = (flags: Uint8Array) => VOC_CLASSES.filter((_, c) => flags[c] === 1);
  return { positive: names(target.positive), difficult: names(target.difficult) };
}

describeWithShared('VOC 2007: the real devkit label files', () => {
  const root = sharedPath('data', 'voc2007');

  it('has 5,011 trainval and 4,952 test images in the 20 standard classes', async () => {
    const trainval = await openVoc2007(root, { split: 'trainval' });
    const test = await openVoc2007(root, { split: 'test' });
    expect([trainval.length, test.length]).toEqual([5011, 4952]);
    expect(trainval.classNames).toEqual(VOC_CLASSES);
    expect(trainval.labelKind).toBe('multi-label');
    expect((await test.images([0, 4951])).map((ref) => ('path' in ref ? ref.path.slice(root.length) : ''))).toEqual([
      '/VOCdevkit/VOC2007/JPEGImages/000001.jpg',
      '/VOCdevkit/VOC2007/JPEGImages/009963.jpg',
    ]);
  });

  it('labels known images: 000001 dog+person, 000002 train, 000005 chair, 000009 horse+person, 000648 difficult-only aeroplane', async () => {
    const trainval = await openVoc2007(root, { split: 'trainval' });
    const test = await openVoc2007(root, { split: 'test' });
    expect(await classesOf(test, '000001')).toEqual({ positive: ['dog', 'person'], difficult: [] });
    expect(await classesOf(test, '000002')).toEqual({ positive: ['train'], difficult: [] });
    expect(await classesOf(trainval, '000005')).toEqual({ positive: ['chair'], difficult: [] });
    expect(await classesOf(trainval, '000009')).toEqual({ positive: ['horse', 'person'], difficult: [] });
    expect(await classesOf(trainval, '000648')).toEqual({ positive: ['bus'], difficult: ['aeroplane', 'car', 'person'] });
  });

  it('counts positives per class as the published trainval statistics, through datasetInfo', async () => {
    const info = await datasetInfo(`voc2007:${root}`, 'trainval');
    expect(info.count).toBe(5011);
    expect(info.perClassCounts).toEqual(PUBLISHED_TRAINVAL_IMAGES);
  });
});

describe('VOC 2007 devkit layout (generated images and annotations)', () => {
  let base: string;
  let remove: () => Promise<void>;
  const annotation = (objects: string) =>
    `<annotation><folder>VOC2007</folder><filename>x.jpg</filename><size><width>20</width><height>10</height><depth>3</depth></size>${objects}</annotation>`;
  const object = (name: string, difficult: 0 | 1, extra = '') =>
    `<object><name>${name}</name><pose>Left</pose><truncated>0</truncated><difficult>${difficult}</difficult>${extra}<bndbox><xmin>2</xmin><ymin>1</ymin><xmax>9</xmax><ymax>8</ymax></bndbox></object>`;
  const person = object(
    'person',
    0,
    '<part><name>head</name><bndbox><xmin>3</xmin><ymin>1</ymin><xmax>5</xmax><ymax>3</ymax></bndbox></part>',
  );

  beforeAll(async () => {
    let root: string;
    ({ path: root, remove } = await temporaryDirectory());
    base = join(root, 'VOCdevkit', 'VOC2007');
    for (const folder of ['Annotations', 'JPEGImages', join('ImageSets', 'Main')]) await mkdir(join(base, folder), { recursive: true });
    const annotations: Record<string, string> = {
      '000010': annotation(person + object('dog', 0) + object('dog', 1)),
      '000011': annotation(object('cat', 1) + object('cat', 1) + object('sofa', 0)),
      '000012': annotation(object('tvmonitor', 0)),
    };
    for (const [i, [id, xml]] of Object.entries(annotations).entries()) {
      await writeFile(join(base, 'Annotations', `${id}.xml`), xml);
      const image = sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 60 * i, g: 100, b: 200 } } });
      await writeFile(join(base, 'JPEGImages', `${id}.jpg`), await image.jpeg({ quality: 95 }).toBuffer());
    }
    await writeFile(join(base, 'ImageSets', 'Main', 'trainval.txt'), '000010\r\n000011\r\n000012\r\n');
    await writeFile(join(base, 'ImageSets', 'Main', 'test.txt'), '000012\n');
    // Only the test split has class files (two of them): test must fail naming the first missing one.
    await writeFile(join(base, 'ImageSets', 'Main', 'aeroplane_test.txt'), '000012 -1\n');
  });
  afterAll(() => remove());

  it('parses objects, their difficult flags and boxes, ignoring the names of body parts', () => {
    const parsed = parseVocAnnotation(annotation(person + object('dog', 1)), 'a.xml');
    expect(parsed).toMatchObject({ filename: 'x.jpg', width: 20, height: 10 });
    expect(parsed.objects).toEqual([
      { name: 'person', difficult: false, truncated: false, box: { xmin: 2, ymin: 1, xmax: 9, ymax: 8 } },
      { name: 'dog', difficult: true, truncated: false, box: { xmin: 2, ymin: 1, xmax: 9, ymax: 8 } },
    ]);
  });

  it('derives targets from the XML when the class files are absent: difficult-only classes are flagged, not positive', async () => {
    const dataset = await openVoc2007(join(base, '..', '..'));
    expect(dataset.length).toBe(3);
    expect(await classesOf(dataset, '000010')).toEqual({ positive: ['dog', 'person'], difficult: [] });
    expect(await classesOf(dataset, '000011')).toEqual({ positive: ['sofa'], difficult: ['cat'] });
    expect(await classesOf(dataset, '000012')).toEqual({ positive: ['tvmonitor'], difficult: [] });
  });

  it('gives the same targets from class files written by the devkit rule', async () => {
    const fromXml = await openVoc2007(base);
    const targets = await fromXml.targets();
    if (targets.kind !== 'multi-label') throw new Error('multi-label expected');
    const main = join(base, 'ImageSets', 'Main');
    for (const [c, name] of VOC_CLASSES.entries()) {
      const lines = ['000010', '000011', '000012'].map((id, i) => {
        const value = targets.positive[i * 20 + c] ? 1 : targets.difficult[i * 20 + c] ? 0 : -1;
        return `${id} ${value === -1 ? '' : ' '}${value}`;
      });
      await writeFile(join(main, `${name}_trainval.txt`), `${lines.join('\r\n')}\r\n`);
    }
    const fromFiles = await openVoc2007(base, { labelsFrom: 'imagesets' });
    expect(await fromFiles.targets()).toEqual(targets);
  });

  it('decodes its JPEG images through the pipeline', async () => {
    const pipeline = await ImagePipeline.create(await openVoc2007(base), { transform: { size: [8, 8], crop: 'center' }, workers: 1 });
    try {
      const batch = await pipeline.read([2]);
      expect(batch.images.shape).toEqual([1, 3, 8, 8]);
      expect(batch.images.data[0]).toBeCloseTo(120 / 255, 1);
      expect(batch.targets).toMatchObject({ kind: 'multi-label', classCount: 20 });
    } finally {
      await pipeline.close();
    }
  });

  it('fails clearly on a missing class file entry, a bad label, an unknown class and a non-annotation file', async () => {
    await expect(openVoc2007(base, { split: 'test', labelsFrom: 'imagesets' })).rejects.toThrow(
      `${join(base, 'ImageSets', 'Main', 'bicycle_test.txt')}: file not found`,
    );
    await writeFile(join(base, 'ImageSets', 'Main', 'aeroplane_test.txt'), '000012 2\n');
    await expect(openVoc2007(base, { split: 'test', labelsFrom: 'imagesets' })).rejects.toThrow(
      "aeroplane_test.txt: line 1: expected '<image id> <1|0|-1>', got '000012 2'",
    );
    await writeFile(join(base, 'ImageSets', 'Main', 'aeroplane_test.txt'), '');
    await expect(openVoc2007(base, { split: 'test', labelsFrom: 'imagesets' })).rejects.toThrow(
      'aeroplane_test.txt: has no line for image 000012',
    );
    expect(() => parseVocAnnotation(annotation(object('unicorn', 0)), 'u.xml')).toThrow("u.xml: object 1 has class 'unicorn'");
    expect(() => parseVocAnnotation('<html></html>', 'h.xml')).toThrow('h.xml: no <annotation> element');
    await expect(openVoc2007(base, { split: 'val' })).rejects.toThrow(`${join(base, 'ImageSets', 'Main', 'val.txt')}: file not found`);
    await expect(openVoc2007(join(base, 'JPEGImages'))).rejects.toThrow('not a VOC 2007 devkit');
  });
});

describe('VOC annotations that are not well-formed or very large (parsed in a child process)', () => {
  let root: string;
  let remove: () => Promise<void>;
  const isolated = new Isolated(fileURLToPath(new URL('./isolated-targets.ts', import.meta.url)), 20_000);
  const object =
    '<object><name>dog</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>8</ymax></bndbox></object>';
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
  });
  afterAll(async () => {
    await isolated.close();
    await remove();
  });

  async function parse(name: string, xml: string) {
    await writeFile(join(root, name), xml);
    return isolated.call('parseVocFile', join(root, name));
  }

  it('refuses an unclosed <object> instead of dropping it, naming the file and the line', async () => {
    const outcome = await parse('unclosed.xml', `<annotation>\n${object}\n<object><name>cat</name>\n</annotation>\n`);
    expect(outcome, describeOutcome(outcome)).toMatchObject({
      kind: 'threw',
      error: { name: 'DatasetFileError', path: join(root, 'unclosed.xml') },
    });
    if (outcome.kind === 'threw') expect(outcome.error.message).toMatch(/not well-formed XML \(line \d+: .*object/);
  });

  it('reads 2 MiB of objects, and refuses 2 MiB of unclosed ones, in linear time (no hang)', async () => {
    const many = await parse('many.xml', `<annotation>${object.repeat(16_000)}</annotation>`);
    expect(many, describeOutcome(many)).toMatchObject({ kind: 'returned', value: { objects: 16_000 } });
    const unclosed = await parse('many-unclosed.xml', `<annotation>${'<object><name>dog</name>'.repeat(90_000)}</annotation>`);
    expect(unclosed, describeOutcome(unclosed)).toMatchObject({ kind: 'threw', error: { name: 'DatasetFileError' } });
  });
});
