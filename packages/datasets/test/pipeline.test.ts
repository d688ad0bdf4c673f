import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImageFolder } from '../src/folder.js';
import { ImagePipeline } from '../src/pipeline.js';
import { mixSeed, seededRandom } from '../src/random.js';
import { type TransformSpec, transformImage } from '../src/transform.js';
import type { ImageDataset, RgbImage } from '../src/types.js';
import { encodePng, patternImage, temporaryDirectory } from './helpers.js';

const CLASSES = ['cats', 'dogs'];
const PER_CLASS = 7;
const eval8: TransformSpec = { size: [8, 8], crop: 'center', normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } };
const train8: TransformSpec = { size: [8, 8], crop: 'random-resized', flip: true, seed: 3 };

describe('ImagePipeline (worker threads)', () => {
  let root: string;
  let remove: () => Promise<void>;
  let dataset: ImageDataset;
  /** The original pixels of image i, in dataset order (class then file name). */
  const originals: RgbImage[] = [];

  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    for (const [label, name] of CLASSES.entries()) {
      await mkdir(join(root, name));
      for (let i = 0; i < PER_CLASS; i++) {
        const image = patternImage(12 + i, 10, label * 100 + i);
        originals.push(image);
        await writeFile(join(root, name, `${String(i).padStart(2, '0')}.png`), encodePng(image));
      }
    }
    dataset = await openImageFolder(root);
  });
  afterAll(() => remove());

  /** What the pipeline must produce for image `index`: the transform applied to the original pixels. */
  function expected(index: number, spec: TransformSpec, epoch = 0): Float32Array {
    const out = new Float32Array(3 * 8 * 8);
    transformImage(originals[index], spec, seededRandom(mixSeed(spec.seed ?? 0, epoch, index)), out, 0);
    return out;
  }

  it('yields batches in order, equal to transforming the original pixels, with targets aligned', async () => {
    const pipeline = await ImagePipeline.create(dataset, { transform: eval8, workers: 2 });
    try {
      const batches = [];
      for await (const batch of pipeline.batches({ batchSize: 4 })) batches.push(batch);
      expect(batches.map((b) => b.indices)).toEqual([
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
        [12, 13],
      ]);
      expect(batches.map((b) => b.nextStart)).toEqual([4, 8, 12, 14]);
      for (const batch of batches) {
        expect(batch.images.shape).toEqual([batch.indices.length, 3, 8, 8]);
        expect(batch.targets).toMatchObject({
          kind: 'single-label',
          labels: Int32Array.from(batch.indices, (i) => (i < PER_CLASS ? 0 : 1)),
        });
        batch.indices.forEach((index, row) => {
          expect(batch.images.data.subarray(row * 192, (row + 1) * 192)).toEqual(expected(index, eval8));
        });
      }
    } finally {
      await pipeline.close();
    }
  });

  it('writes each batch into one of a few reused buffers, intact until the next batch is asked for', async () => {
    const pipeline = await ImagePipeline.create(dataset, { transform: eval8, workers: 2, prefetch: 1 });
    try {
      const buffers = new Set<ArrayBufferLike>();
      let count = 0;
      for await (const batch of pipeline.batches({ batchSize: 2 })) {
        // Decoding of the batches after it runs meanwhile, into the other buffers.
        await new Promise((resolve) => setTimeout(resolve, 20));
        for (const [row, index] of batch.indices.entries()) {
          expect(batch.images.data.subarray(row * 192, (row + 1) * 192)).toEqual(expected(index, eval8));
        }
        buffers.add(batch.images.data.buffer);
        count++;
      }
      // 7 batches through 1 + prefetch batches in flight and the one held.
      expect(count).toBe(7);
      expect(buffers.size).toBe(3);
    } finally {
      await pipeline.close();
    }
  });

  it('gives bit-identical random crops with 2 workers and with none, different in another epoch', async () => {
    const order = [13, 2, 7, 0, 9, 4, 11];
    const outputs = [];
    for (const workers of [2, 0]) {
      const pipeline = await ImagePipeline.create(dataset, { transform: train8, workers });
      try {
        const rows = [];
        for await (const batch of pipeline.batches({ batchSize: 3, order, epoch: 1 })) {
          rows.push(...batch.indices);
          outputs.push(batch.images.data);
        }
        expect(rows).toEqual(order);
      } finally {
        await pipeline.close();
      }
    }
    const [withWorkers, inline] = [outputs.slice(0, 3), outputs.slice(3)];
    expect(withWorkers).toEqual(inline);
    expect(withWorkers[0].subarray(0, 192)).toEqual(expected(13, train8, 1));
    expect(withWorkers[0].subarray(0, 192)).not.toEqual(expected(13, train8, 2));
  });

  it('resumes from a start position and reads arbitrary indices, also through the SampleSource view', async () => {
    const pipeline = await ImagePipeline.create(dataset, { transform: eval8, workers: 1 });
    try {
      const resumed = [];
      for await (const batch of pipeline.batches({ batchSize: 5, start: 10 })) resumed.push(batch.indices);
      expect(resumed).toEqual([[10, 11, 12, 13]]);
      const source = pipeline.sampleSource();
      expect([source.count, ...source.sampleShape]).toEqual([14, 3, 8, 8]);
      const read = await source.read([5, 5, 12]);
      expect(read.shape).toEqual([3, 3, 8, 8]);
      expect(read.data.subarray(2 * 192)).toEqual(expected(12, eval8));
    } finally {
      await pipeline.close();
    }
  });

  it('ten-crop yields 10 consecutive rows per image', async () => {
    const pipeline = await ImagePipeline.create(dataset, { transform: { size: [8, 8], crop: 'ten-crop' }, workers: 2 });
    try {
      const batch = await pipeline.read([3, 8]);
      expect(batch.images.shape).toEqual([20, 3, 8, 8]);
      expect(() => pipeline.sampleSource()).toThrow('10 rows per image');
    } finally {
      await pipeline.close();
    }
  });

  describe('bad images', () => {
    let badRoot: string;
    beforeAll(async () => {
      badRoot = join(root, 'bad');
      await mkdir(join(badRoot, 'a'), { recursive: true });
      for (let i = 0; i < 5; i++) await writeFile(join(badRoot, 'a', `${i}.png`), encodePng(patternImage(8, 8, i)));
      await writeFile(join(badRoot, 'a', '1.png'), encodePng(patternImage(8, 8, 1)).subarray(0, 40));
      await writeFile(join(badRoot, 'a', '3.png'), 'not a png');
    });

    it('fail with the path, the problem and the way to skip them', async () => {
      const pipeline = await ImagePipeline.create(await openImageFolder(badRoot), { transform: eval8, workers: 2 });
      try {
        await expect(pipeline.read([0, 1, 2, 3])).rejects.toThrow(
          new RegExp(
            `${join(badRoot, 'a', '1.png')}: cannot decode image: .*skip such files with --skip-bad-images, or skipBadImages: true through the API; 1 more in this batch`,
          ),
        );
      } finally {
        await pipeline.close();
      }
    });

    it('are dropped and counted with skipBadImages, also a file deleted after listing', async () => {
      const folder = await openImageFolder(badRoot);
      await rm(join(badRoot, 'a', '4.png'));
      const pipeline = await ImagePipeline.create(folder, { transform: eval8, workers: 2, skipBadImages: true });
      try {
        const batches = [];
        for await (const batch of pipeline.batches({ batchSize: 3 })) batches.push(batch);
        expect(batches.map((b) => b.indices)).toEqual([[0, 2], []]);
        expect(batches.map((b) => b.images.shape[0])).toEqual([2, 0]);
        expect(pipeline.skipped.map((s) => [s.index, s.path.slice(badRoot.length)])).toEqual([
          [1, '/a/1.png'],
          [3, '/a/3.png'],
          [4, '/a/4.png'],
        ]);
        expect(pipeline.skipped[2].problem).toBe('file not found');
        await expect(pipeline.sampleSource().read([4])).rejects.toThrow('file not found');
      } finally {
        await pipeline.close();
      }
    });
  });
});
