import { readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, openCifar } from '../src/cifar.js';
import type { RgbImage } from '../src/types.js';
import { cifarRecords, temporaryDirectory } from './helpers.js';

const pixelsOf = (ref: { pixels: RgbImage } | { path: string }): RgbImage => {
  if (!('pixels' in ref)) throw new Error('CIFAR samples carry their pixels');
  return ref.pixels;
};

describeWithShared('CIFAR-10 binary: the real first 4,000 records of data_batch_1', () => {
  const file = sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin');

  it('has 4,000 records (file size / 3,073), the documented first ten labels, and the class names', async () => {
    const dataset = await openCifar('cifar10', file);
    expect(statSync(file).size).toBe(4000 * 3073);
    expect(dataset.length).toBe(4000);
    expect(dataset.classNames).toEqual(CIFAR10_CLASSES);
    const targets = await dataset.targets();
    if (targets.kind !== 'single-label') throw new Error('CIFAR is single-label');
    const firstTen = [...targets.labels.subarray(0, 10)].map((label) => dataset.classNames[label]);
    expect(firstTen).toEqual(['frog', 'truck', 'truck', 'deer', 'automobile', 'automobile', 'bird', 'horse', 'ship', 'cat']);
  });

  it('decodes pixel (0,0) of record 0 from bytes 1, 1025 and 2049, and pixel (31,31) of record 3999', async () => {
    const bytes = readFileSync(file);
    const dataset = await openCifar('cifar10', file);
    const [first, last] = (await dataset.images([0, 3999])).map(pixelsOf);
    expect([first.width, first.height]).toEqual([32, 32]);
    expect([...first.data.subarray(0, 3)]).toEqual([bytes[1], bytes[1025], bytes[2049]]);
    const lastRecord = 3999 * 3073 + 1;
    const p = 31 * 32 + 31;
    expect([...last.data.subarray(3 * p, 3 * p + 3)]).toEqual([
      bytes[lastRecord + p],
      bytes[lastRecord + 1024 + p],
      bytes[lastRecord + 2048 + p],
    ]);
  });

  it('streams all records in order, agreeing with random access and with the label scan', async () => {
    const dataset = await openCifar('cifar10', file);
    const targets = await dataset.targets();
    if (targets.kind !== 'single-label') throw new Error('CIFAR is single-label');
    const probes = new Map([
      [0, undefined],
      [1023, undefined],
      [1024, undefined],
      [3999, undefined],
    ] as [number, RgbImage | undefined][]);
    let seen = 0;
    for await (const sample of dataset) {
      expect(sample.index).toBe(seen);
      expect(sample.target).toEqual({ label: targets.labels[seen] });
      if (probes.has(sample.index)) probes.set(sample.index, pixelsOf(sample.image));
      seen++;
    }
    expect(seen).toBe(4000);
    const random = (await dataset.images([...probes.keys()])).map(pixelsOf);
    expect([...probes.values()].map((image) => Buffer.from(image!.data))).toEqual(random.map((image) => Buffer.from(image.data)));
  });
});

describe('CIFAR binary directories (generated)', () => {
  let root: string;
  let remove: () => Promise<void>;
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    const cifar10 = join(root, 'c10', 'cifar-10-batches-bin');
    await mkdir(cifar10, { recursive: true });
    for (let batch = 1; batch <= 5; batch++) {
      await writeFile(
        join(cifar10, `data_batch_${batch}.bin`),
        cifarRecords(3, (r) => [(batch + r) % 10]),
      );
    }
    await writeFile(
      join(cifar10, 'test_batch.bin'),
      cifarRecords(2, (r) => [9 - r]),
    );
    await writeFile(join(cifar10, 'batches.meta.txt'), `${CIFAR10_CLASSES.map((name) => name.toUpperCase()).join('\n')}\n\n`);
    const cifar100 = join(root, 'c100');
    await mkdir(cifar100);
    await writeFile(
      join(cifar100, 'train.bin'),
      cifarRecords(4, (r) => [r + 16, 99 - r]),
    );
    await writeFile(
      join(cifar100, 'test.bin'),
      cifarRecords(1, () => [0, 0]),
    );
    await mkdir(join(root, 'bad'));
    await writeFile(join(root, 'bad', 'short.bin'), cifarRecords(2, () => [1]).subarray(0, 3073 + 100));
    await writeFile(
      join(root, 'bad', 'label.bin'),
      cifarRecords(2, (r) => [r === 1 ? 10 : 0]),
    );
  });
  afterAll(() => remove());

  it('reads the five training batches in order, the test batch, and class names from batches.meta.txt', async () => {
    const train = await openCifar('cifar10', join(root, 'c10'));
    expect(train.length).toBe(15);
    expect(train.classNames[0]).toBe('AIRPLANE');
    const targets = await train.targets();
    if (targets.kind !== 'single-label') throw new Error('single-label expected');
    expect([...targets.labels]).toEqual([1, 2, 3, 2, 3, 4, 3, 4, 5, 4, 5, 6, 5, 6, 7]);
    // Index 7 is record 1 of data_batch_3: pixel p of channel c is (1 + 7c + 3p) mod 256.
    const [image] = (await train.images([7])).map(pixelsOf);
    expect([...image.data.subarray(3 * 5, 3 * 5 + 3)]).toEqual([16, 23, 30]);
    const test = await openCifar('cifar10', join(root, 'c10', 'cifar-10-batches-bin'), { split: 'test' });
    expect(test.length).toBe(2);
    expect(await test.targets()).toMatchObject({ labels: Int32Array.from([9, 8]) });
  });

  it('reads CIFAR-100 fine labels (second byte) by default and coarse labels (first byte) on request', async () => {
    const fine = await openCifar('cifar100', join(root, 'c100'));
    expect(fine.classNames).toEqual(CIFAR100_FINE_CLASSES);
    expect(await fine.targets()).toMatchObject({ classCount: 100, labels: Int32Array.from([99, 98, 97, 96]) });
    const coarse = await openCifar('cifar100', join(root, 'c100'), { labels: 'coarse' });
    expect(coarse.classNames).toEqual(CIFAR100_COARSE_CLASSES);
    expect(await coarse.targets()).toMatchObject({ classCount: 20, labels: Int32Array.from([16, 17, 18, 19]) });
    const [image] = (await fine.images([2])).map(pixelsOf);
    expect(image.data[0]).toBe(2);
  });

  it('has the 100 fine and 20 coarse CIFAR-100 names, each list sorted as in the official files', () => {
    expect(CIFAR100_FINE_CLASSES).toHaveLength(100);
    expect(CIFAR100_COARSE_CLASSES).toHaveLength(20);
    expect([...CIFAR100_FINE_CLASSES].sort()).toEqual(CIFAR100_FINE_CLASSES);
    expect([...CIFAR100_COARSE_CLASSES].sort()).toEqual(CIFAR100_COARSE_CLASSES);
  });

  it('rejects a file whose size is not a whole number of records, naming the file and the size', async () => {
    await expect(openCifar('cifar10', join(root, 'bad', 'short.bin'))).rejects.toThrow(
      `${join(root, 'bad', 'short.bin')}: size 3173 bytes is not a whole number of CIFAR-10 records (3073 bytes each)`,
    );
  });

  it('rejects a label outside the classes, naming the file and record', async () => {
    const dataset = await openCifar('cifar10', join(root, 'bad', 'label.bin'));
    await expect(dataset.targets()).rejects.toThrow(`${join(root, 'bad', 'label.bin')}: record 1 has label 10, but there are 10 classes`);
  });

  it('names the missing batch files of an incomplete directory, and a missing path', async () => {
    await expect(openCifar('cifar100', join(root, 'c10'))).rejects.toThrow('missing CIFAR-100 train file(s) train.bin');
    await expect(openCifar('cifar10', join(root, 'nowhere'))).rejects.toThrow(`${join(root, 'nowhere')}: not found`);
  });

  it('rejects an index outside the dataset', async () => {
    const dataset = await openCifar('cifar10', join(root, 'c10'));
    await expect(dataset.images([15])).rejects.toThrow('sample index 15 is outside 0..14');
  });
});
