/**
 * Decode + preprocess throughput on the CIFAR-10 JPEGs, with one worker and with the pool, and
 * feature-cache read throughput. Prints a table and JSON.
 *
 *   npx tsx --conditions=source packages/datasets/bench/throughput.ts [EXTRACTED_JPEG_FOLDER] [--images N] [--runs R]
 *
 * Without a folder it extracts ../shared/data/cifar10/cifar-10-jpg.tar.gz to a temp dir (about a
 * minute) and deletes it afterwards. Images are the first N of test/ (default 2,000); each
 * configuration runs R times (default 3) and the median is reported.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { median, sizeOf } from '@gradfeat/core';
import { extract } from 'tar';
import { sharedPath } from '../../../test-support/shared.js';
import {
  type BatchOptions,
  type BatchSource,
  type DecoderChoice,
  type ImageBatch,
  type ImageDataset,
  ImagePipeline,
  openFeatureCache,
  openImageFolder,
  type TransformSpec,
  writeFeatureCache,
} from '../src/index.js';

interface Result {
  readonly task: string;
  readonly workers: number;
  readonly imagesPerSecond: number;
  readonly runs: readonly number[];
  /** CPU seconds the whole process (all threads) used per wall-clock second, median: above 1 means work ran in parallel. */
  readonly cpuPerSecond: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { images: { type: 'string', default: '2000' }, runs: { type: 'string', default: '3' } },
});
const imageCount = Number(values.images);
const runs = Number(values.runs);
const BATCH = 256;
const IMAGENET_NORMALIZE = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** Runs `body` `runs` times; `body` returns how many images it processed. */
async function measure(task: string, workers: number, body: () => Promise<number>): Promise<Result> {
  const rates: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run < runs; run++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    const images = await body();
    const seconds = (performance.now() - start) / 1000;
    const { user, system } = process.cpuUsage(cpuStart);
    rates.push(images / seconds);
    cpu.push((user + system) / 1e6 / seconds);
  }
  const result = { task, workers, imagesPerSecond: median(rates), runs: rates, cpuPerSecond: median(cpu) };
  console.error(
    `  ${task}, ${workers} worker(s): ${result.imagesPerSecond.toFixed(0)} images/s, ${result.cpuPerSecond.toFixed(2)} CPU s/s`,
  );
  return result;
}

async function decodeRate(dataset: ImageDataset, transform: TransformSpec, workers: number, decoder: DecoderChoice): Promise<Result> {
  const pipeline = await ImagePipeline.create(dataset, { transform, workers, decoder });
  const order = Array.from({ length: Math.min(imageCount, dataset.length) }, (_, i) => i);
  try {
    const [height, width] = transform.size;
    return await measure(`decode (${decoder}) + preprocess to ${height}×${width}`, workers, async () => {
      let images = 0;
      for await (const batch of pipeline.batches({ batchSize: BATCH, order })) images += batch.indices.length;
      return images;
    });
  } finally {
    await pipeline.close();
  }
}

/** Stands in for an image source when timing the cache: the same random batch every time. */
function syntheticSource(count: number, shape: readonly number[]): BatchSource {
  const rowSize = sizeOf(shape);
  const rows = Float32Array.from({ length: BATCH * rowSize }, () => Math.random());
  return {
    count,
    classNames: ['a', 'b'],
    labelKind: 'single-label',
    cropsPerImage: 1,
    async *batches({ batchSize, start = 0 }: BatchOptions): AsyncGenerator<ImageBatch> {
      for (let first = start; first < count; first += batchSize) {
        const n = Math.min(batchSize, count - first);
        const indices = Array.from({ length: n }, (_, i) => first + i);
        yield {
          indices,
          images: { shape: [n, ...shape], data: rows.subarray(0, n * rowSize) },
          targets: { kind: 'single-label', classCount: 2, labels: Int32Array.from(indices, (i) => i % 2) },
          skipped: [],
          nextStart: first + n,
        };
      }
    },
  };
}

async function cacheReadRates(directory: string): Promise<Result[]> {
  const results: Result[] = [];
  // ResNet-50's last-stage input at 224×224 would be [1024, 14, 14]; a CIFAR ResNet-20's is [32, 16, 16] (8,192 values).
  const shape = [32, 16, 16];
  const count = 8_000;
  for (const dtype of ['float32', 'float16'] as const) {
    const key = { modelHash: 'bench', cut: 'bench', preprocessing: { dtype }, dataset: 'synthetic' };
    const path = join(directory, `cache-${dtype}`);
    await writeFeatureCache(path, {
      key,
      source: syntheticSource(count, shape),
      extract: async (batch) => batch,
      sampleShape: shape,
      batchSize: BATCH,
      dtype,
      shardBytes: 32 * 2 ** 20,
    });
    for (const order of ['sequential', 'shuffled'] as const) {
      const indices = Array.from({ length: count }, (_, i) => i);
      if (order === 'shuffled') {
        for (let i = count - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [indices[i], indices[j]] = [indices[j], indices[i]];
        }
      }
      results.push(
        await measure(`cache read ${dtype} [${shape.join('×')}], ${order} batches of ${BATCH}`, 0, async () => {
          // A fresh cache each run, so every run reads the shards from the file system.
          const { source } = await openFeatureCache(path, key);
          for (let first = 0; first < count; first += BATCH) await source.read(indices.slice(first, first + BATCH));
          return count;
        }),
      );
    }
  }
  return results;
}

async function main(): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'gradfeat-bench-'));
  try {
    let folder = positionals[0];
    if (!folder) {
      console.error(`extracting the CIFAR-10 JPEGs to ${scratch} …`);
      await extract({ file: sharedPath('data', 'cifar10', 'cifar-10-jpg.tar.gz'), cwd: scratch, preserveOwner: false, noMtime: true });
      folder = scratch;
    }
    const dataset = await openImageFolder(join(folder, 'test'));
    const pool = availableParallelism();
    console.error(
      `${Math.min(imageCount, dataset.length)} images from ${join(folder, 'test')}, batches of ${BATCH}, median of ${runs} runs, ${pool} cores`,
    );
    const small: TransformSpec = { size: [32, 32], crop: 'center', normalize: IMAGENET_NORMALIZE };
    const large: TransformSpec = { size: [224, 224], crop: 'center', normalize: IMAGENET_NORMALIZE };
    const results: Result[] = [];
    for (const [transform, decoder] of [
      [small, 'sharp'],
      [small, 'js'],
      [large, 'sharp'],
      [large, 'js'],
    ] as const) {
      for (const workers of [1, pool]) results.push(await decodeRate(dataset, transform, workers, decoder));
    }
    results.push(...(await cacheReadRates(scratch)));
    console.log('| task | workers | images/s (median) | CPU s/s | runs |');
    console.log('|---|---:|---:|---:|---|');
    for (const r of results) {
      console.log(
        `| ${r.task} | ${r.workers === 0 ? 'main thread' : r.workers} | ${r.imagesPerSecond.toFixed(0)} | ${r.cpuPerSecond.toFixed(2)} | ${r.runs.map((v) => v.toFixed(0)).join(', ')} |`,
      );
    }
    console.log(JSON.stringify({ images: Math.min(imageCount, dataset.length), batchSize: BATCH, runs, cores: pool, results }, null, 1));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
