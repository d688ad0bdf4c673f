import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '@gradfeat/core';
import { PNG } from 'pngjs';
import type { FeatureCacheKey, WriteFeatureCacheOptions } from '../src/cache.js';
import type { BatchOptions, BatchSource, ImageBatch } from '../src/pipeline.js';
import { selectTargets } from '../src/targets.js';
import type { RgbImage, Targets } from '../src/types.js';

/** A fresh directory under the system temp dir; `remove` deletes it and everything in it. */
export async function temporaryDirectory(): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'gradfeat-datasets-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A deterministic RGB image whose every pixel differs from its neighbours. */
export function patternImage(width: number, height: number, seed = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101 + ((i * i) % 23)) % 256;
  return { width, height, data };
}

/** PNG bytes of interleaved pixels in the colour type's layout: 0 grey, 2 RGB, 6 RGBA. */
export function encodePngPixels(width: number, height: number, pixels: Uint8Array, colorType: 0 | 2 | 6): Buffer {
  const png = new PNG({ width, height });
  png.data = Buffer.from(pixels);
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: colorType === 6 });
}

export function encodePng(image: RgbImage): Buffer {
  return encodePngPixels(image.width, image.height, image.data, 2);
}

/**
 * CIFAR binary records: label byte(s) then R, G, B planes. Record r's labels are `labels(r)` and its
 * pixel p of channel c is (r + 7c + 3p) mod 256, so any record or plane mix-up is visible.
 */
export function cifarRecords(count: number, labels: (record: number) => number[]): Buffer {
  const labelBytes = labels(0).length;
  const record = labelBytes + 3072;
  const buffer = Buffer.alloc(count * record);
  for (let r = 0; r < count; r++) {
    buffer.set(labels(r), r * record);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) buffer[r * record + labelBytes + c * 1024 + p] = (r + 7 * c + 3 * p) % 256;
  }
  return buffer;
}

/** A feature-cache key for generated test caches. */
export const CACHE_KEY: FeatureCacheKey = {
  modelHash: 'sha256:0123abcd',
  cut: 'layer3.2.relu',
  preprocessing: { size: [32, 32], crop: 'center', normalize: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } },
  dataset: 'generated:test',
};
const IMAGE_SHAPE = [3, 2, 2];

/** Image i is filled from a hash of i, so every row is distinct; `bad` images are reported as skipped. */
export function memorySource(count: number, targets: Targets, bad: ReadonlySet<number> = new Set()): BatchSource {
  const image = (index: number) => Float32Array.from({ length: 12 }, (_, j) => Math.sin(index * 12.9898 + j * 78.233) * 1000);
  return {
    count,
    classNames: Array.from({ length: targets.classCount }, (_, c) => `class${c}`),
    labelKind: targets.kind,
    cropsPerImage: 1,
    async *batches({ batchSize, start = 0 }: BatchOptions): AsyncGenerator<ImageBatch> {
      for (let first = start; first < count; first += batchSize) {
        const positions = Array.from({ length: Math.min(batchSize, count - first) }, (_, i) => first + i);
        const kept = positions.filter((index) => !bad.has(index));
        const data = new Float32Array(kept.length * 12);
        for (const [row, index] of kept.entries()) data.set(image(index), row * 12);
        yield {
          indices: kept,
          images: { shape: [kept.length, ...IMAGE_SHAPE], data },
          targets: selectTargets(targets, kept),
          skipped: positions
            .filter((index) => bad.has(index))
            .map((index) => ({ index, path: `image-${index}.jpg`, problem: 'cannot decode image' })),
          nextStart: first + positions.length,
        };
      }
    },
  };
}

/** A stand-in trunk: features [2, 3] per image, a fixed linear map of the pixels, so results are checkable. */
export async function trunk(batch: HostTensor): Promise<HostTensor> {
  const rows = batch.shape[0];
  const data = new Float32Array(rows * 6);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < 6; f++) {
      let sum = 0;
      for (let j = 0; j < 12; j++) sum += batch.data[r * 12 + j] * ((f + 1) * (j % 5) - 2);
      data[r * 6 + f] = sum / 7;
    }
  }
  return { shape: [rows, 2, 3], data };
}

export const labels = (count: number): Targets => ({
  kind: 'single-label',
  classCount: 5,
  labels: Int32Array.from({ length: count }, (_, i) => (i * 3) % 5),
});

/** 30 images in batches of 4; 12 float32 rows of 6 values (288 bytes) per shard, closing at batch boundaries. */
export function smallCacheOptions(overrides: Partial<WriteFeatureCacheOptions> = {}): WriteFeatureCacheOptions {
  return {
    key: CACHE_KEY,
    source: memorySource(30, labels(30)),
    extract: trunk,
    sampleShape: [2, 3],
    batchSize: 4,
    shardBytes: 10 * 6 * 4,
    ...overrides,
  };
}
