import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { extract } from 'tar';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { CIFAR10_CLASSES } from '../src/cifar.js';
import { decodeImage } from '../src/decode.js';
import { openImageFolder } from '../src/folder.js';
import { ImagePipeline } from '../src/pipeline.js';
import { datasetInfo } from '../src/spec.js';
import type { RgbImage } from '../src/types.js';
import { temporaryDirectory } from './helpers.js';

const EXTRACTION_TIMEOUT = 600_000;

function meanAbsoluteDifference(a: RgbImage, b: RgbImage): number {
  let total = 0;
  for (let i = 0; i < a.data.length; i++) total += Math.abs(a.data[i] - b.data[i]);
  return total / a.data.length;
}

describeWithShared('image folders: the CIFAR-10 JPEG archive, extracted once for this file', () => {
  let root: string;
  let remove: () => Promise<void>;
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    // ~60,000 small files: skip the per-file chown and utimes, which only slow extraction down.
    await extract({ file: sharedPath('data', 'cifar10', 'cifar-10-jpg.tar.gz'), cwd: root, preserveOwner: false, noMtime: true });
  }, EXTRACTION_TIMEOUT);
  afterAll(() => remove(), EXTRACTION_TIMEOUT);

  it('lists 50,000 train and 10,000 test images, 5,000 / 1,000 per class, classes in CIFAR order', async () => {
    const train = await openImageFolder(join(root, 'train'));
    expect(train.length).toBe(50_000);
    expect(train.classNames).toEqual(CIFAR10_CLASSES);
    const info = await datasetInfo(`folder:${root}`, 'test');
    expect(info.count).toBe(10_000);
    expect(info.perClassCounts).toEqual(new Array(10).fill(1_000));
    expect((await datasetInfo(`folder:${join(root, 'train')}`, 'train')).perClassCounts).toEqual(new Array(10).fill(5_000));
    expect((await train.images([5_000]))[0]).toEqual({ path: join(root, 'train', 'automobile', '0000.jpg') });
  });

  // Measured over the 4,000 records (see README): JPEG vs its record mean |Δ| 5.8 (worst image 13.0), vs the
  // next record ≥ 21.8; sharp vs jpeg-js 1.47 on average (worst image 6.7), mostly where libjpeg-turbo's
  // smooth chroma upsampling and jpeg-js's pixel replication differ at sharp colour edges.
  it('holds the pictures of the binary batch (train/<class>/NNNN.jpg = that class’s NNNN-th record), decoded alike by sharp and jpeg-js', async () => {
    const binary = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
    const record = (r: number): RgbImage => {
      const data = new Uint8Array(3072);
      for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) data[3 * p + c] = binary[r * 3073 + 1 + c * 1024 + p];
      return { width: 32, height: 32, data };
    };
    const seenPerClass = new Array(10).fill(0);
    const error = { sharp: 0, js: 0, between: 0 };
    let worstMatch = 0;
    let bestMismatch = Number.POSITIVE_INFINITY;
    let worstBetween = 0;
    for (let r = 0; r < 4000; r++) {
      const label = binary[r * 3073];
      const path = join(root, 'train', CIFAR10_CLASSES[label], `${String(seenPerClass[label]++).padStart(4, '0')}.jpg`);
      const bytes = readFileSync(path);
      const fromSharp = await decodeImage(bytes, path, 'sharp');
      const fromJs = await decodeImage(bytes, path, 'js');
      const match = meanAbsoluteDifference(fromSharp, record(r));
      const between = meanAbsoluteDifference(fromSharp, fromJs);
      error.sharp += match / 4000;
      error.js += meanAbsoluteDifference(fromJs, record(r)) / 4000;
      error.between += between / 4000;
      worstMatch = Math.max(worstMatch, match);
      bestMismatch = Math.min(bestMismatch, meanAbsoluteDifference(fromSharp, record((r + 1) % 4000)));
      worstBetween = Math.max(worstBetween, between);
    }
    expect(worstMatch).toBeLessThan(14);
    expect(bestMismatch).toBeGreaterThan(18);
    expect(error.sharp).toBeLessThan(7);
    // Neither decoder adds error beyond JPEG's own loss, and they differ by little on average.
    expect(Math.abs(error.js - error.sharp)).toBeLessThan(0.5);
    expect(error.between).toBeLessThan(2);
    expect(worstBetween).toBeLessThan(8);
  });

  it('feeds the worker pipeline: a batch of real JPEGs equals decoding them one by one', async () => {
    const test = await openImageFolder(join(root, 'test'));
    const transform = {
      size: [32, 32] as const,
      crop: 'center' as const,
      normalize: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    };
    const pipeline = await ImagePipeline.create(test, { transform, workers: 2 });
    try {
      const indices = [0, 999, 1_000, 9_999];
      const batch = await pipeline.read(indices);
      expect(batch.targets).toMatchObject({ labels: Int32Array.from([0, 0, 1, 9]) });
      const inline = await ImagePipeline.create(test, { transform, workers: 0 });
      expect((await inline.read(indices)).images).toEqual(batch.images);
      await inline.close();
      // Spot-check one value against the decoded pixel: red of pixel (0,0) of image 0.
      const [ref] = await test.images([0]);
      const pixels = await decodeImage(readFileSync((ref as { path: string }).path), 'test image 0', 'auto');
      expect(batch.images.data[0]).toBeCloseTo((pixels.data[0] / 255 - 0.485) / 0.229, 5);
    } finally {
      await pipeline.close();
    }
  });
});
