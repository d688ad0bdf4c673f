import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createPluginContainer, NotRegisteredError, registerPlugin } from '@gradfeat/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { CIFAR10_CLASSES } from '../src/cifar.js';
import type { DatasetFormat } from '../src/dataset-format.js';
import { openImageFolder } from '../src/folder.js';
import { datasetInfo, openDataset, parseDatasetSpec, registeredDatasetFormats, splitLocation } from '../src/spec.js';
import { encodePng, patternImage, temporaryDirectory } from './helpers.js';

describe('dataset specs', () => {
  it('parses KIND:PATH, splitting at the first colon only', () => {
    expect(parseDatasetSpec('cifar10:/data/cifar-10-batches-bin')).toEqual({ kind: 'cifar10', path: '/data/cifar-10-batches-bin' });
    expect(parseDatasetSpec('folder:C:\\images')).toEqual({ kind: 'folder', path: 'C:\\images' });
    expect(parseDatasetSpec('voc2007:rel/VOCdevkit')).toEqual({ kind: 'voc2007', path: 'rel/VOCdevkit' });
  });

  it('rejects unknown kinds and missing paths with the expected form', () => {
    expect(() => parseDatasetSpec('mnist:/x')).toThrow(
      "dataset 'mnist:/x' should be KIND:PATH with KIND one of cifar10, cifar100, folder, voc2007, imagenet",
    );
    expect(() => parseDatasetSpec('/just/a/path')).toThrow('should be KIND:PATH');
    expect(() => parseDatasetSpec('imagenet:')).toThrow("dataset 'imagenet:' has no path after 'imagenet:'");
  });

  it('rejects a split the kind does not have', async () => {
    await expect(openDataset('cifar10:/x', 'val')).rejects.toThrow("cifar10 has splits train, test, not 'val'");
    await expect(openDataset('voc2007:/x', 'train2012')).rejects.toThrow("voc2007 has splits train, val, trainval, test, not 'train2012'");
  });

  describe('folder splits', () => {
    let root: string;
    let remove: () => Promise<void>;
    beforeAll(async () => {
      ({ path: root, remove } = await temporaryDirectory());
      const png = encodePng(patternImage(4, 4));
      for (const file of [
        'split/train/a/1.png',
        'split/train/b/1.png',
        'split/train/b/2.png',
        'split/test/a/1.png',
        'flat/train/1.png',
        'flat/bus/1.png',
      ]) {
        await mkdir(join(root, file, '..'), { recursive: true });
        await writeFile(join(root, file), png);
      }
    });
    afterAll(() => remove());

    it('reads PATH/<split> when it holds class folders, else PATH (where "train" may be a class)', async () => {
      expect(await datasetInfo(`folder:${join(root, 'split')}`, 'train')).toMatchObject({
        count: 3,
        classNames: ['a', 'b'],
        perClassCounts: [1, 2],
      });
      expect(await datasetInfo(`folder:${join(root, 'split')}`, 'test')).toMatchObject({ count: 1, classNames: ['a'] });
      expect(await datasetInfo(`folder:${join(root, 'flat')}`, 'train')).toMatchObject({
        count: 2,
        classNames: ['bus', 'train'],
        perClassCounts: [1, 1],
      });
    });

    it("a plugin's format is a KIND like the built-in ones: parsed, its splits checked, its splits apart by default", async () => {
      const scope = createPluginContainer();
      const perSplit: DatasetFormat = {
        name: 'per-split',
        describes: 'PATH/<split>, a folder of class folders',
        splits: ['train', 'test'],
        open: (path, split) => openImageFolder(join(path, split)),
      };
      registerPlugin({ name: 'test-formats', datasetFormats: [perSplit] }, { container: scope });
      expect(registeredDatasetFormats(scope)).toEqual([perSplit]);
      expect(() => parseDatasetSpec('per-split:/x')).toThrow(NotRegisteredError);
      const spec = parseDatasetSpec(`per-split:${join(root, 'split')}`, scope);
      expect(await datasetInfo(spec, 'train', scope)).toMatchObject({ count: 3, classNames: ['a', 'b'], perClassCounts: [1, 2] });
      await expect(openDataset(spec, 'val', scope)).rejects.toThrow("per-split has splits train, test, not 'val'");
      expect(await splitLocation(spec, 'test', scope)).toBe(`${resolve(root, 'split')} (test)`);
    });
  });
});

describeWithShared('datasetInfo on the real CIFAR-10 records', () => {
  it('counts 4,000 records per class by streaming, matching a count of the label bytes', async () => {
    const file = sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin');
    const bytes = readFileSync(file);
    const expected = new Array(10).fill(0);
    for (let r = 0; r < 4000; r++) expected[bytes[r * 3073]]++;
    const info = await datasetInfo(`cifar10:${file}`, 'train');
    expect(info).toMatchObject({ count: 4000, classNames: CIFAR10_CLASSES, labelKind: 'single-label', perClassCounts: expected });
    expect(expected.every((count) => count > 300)).toBe(true);
  });
});
