import { availableParallelism } from 'node:os';
import { type HostTensor, type SampleSource, sizeOf } from '@gradfeat/core';
import { type DecoderChoice, decodePixelLimit } from './decode.js';
import type { DecodeResult } from './decode-job.js';
import { DatasetFileError } from './errors.js';
import { DecodePool } from './pool.js';
import { mixSeed } from './random.js';
import { selectTargets } from './targets.js';
import { cropsPerImage, type TransformSpec, transformedShape, validateTransform } from './transform.js';
import type { ImageDataset, LabelKind, Targets } from './types.js';

/** How an ImagePipeline decodes and transforms. */
export interface PipelineOptions {
  readonly transform: TransformSpec;
  /** Worker threads decoding in parallel. Default: one per core; 0 decodes on the calling thread. */
  readonly workers?: number;
  readonly decoder?: DecoderChoice;
  /** Drop images that are missing, truncated or undecodable (counted in `skipped`) instead of failing. */
  readonly skipBadImages?: boolean;
  /** Batches decoded ahead of the one being consumed. Default 2. */
  readonly prefetch?: number;
  /** Largest image decoded, in pixels (default 2²⁶); lowered so that every worker can hold one image at once. */
  readonly maxImagePixels?: number;
}

/** An image dropped because it could not be read. */
export interface SkippedImage {
  readonly index: number;
  readonly path: string;
  readonly problem: string;
}

/** A batch of preprocessed images with their targets. */
export interface ImageBatch {
  /** Dataset indices of the images in the batch, bad images already dropped when skipping. */
  readonly indices: readonly number[];
  /** [indices.length × cropsPerImage, ...sampleShape]; an image's crops are consecutive rows. */
  readonly images: HostTensor;
  /** One row per index. */
  readonly targets: Targets;
  readonly skipped: readonly SkippedImage[];
  /** From batches(): where the next batch starts in the iteration order; pass it as `start` to resume after this batch. 0 from read(). */
  readonly nextStart: number;
}

/** Which images `batches` yields, in what order. */
export interface BatchOptions {
  readonly batchSize: number;
  /** Position in `order` to begin at. Default 0. */
  readonly start?: number;
  /** Position in `order` to stop before (a shard's end). Default: the end of `order`. */
  readonly end?: number;
  /** Dataset indices in the order to visit them (e.g. shuffled). Default 0 … length−1. */
  readonly order?: readonly number[];
  /** Varies the random crops and flips between epochs. Default 0. */
  readonly epoch?: number;
}

/** What the feature cache reads: batches of preprocessed images with their targets, in a fixed order. */
export interface BatchSource {
  /** Images (not crops) the source yields in all. */
  readonly count: number;
  readonly classNames: readonly string[];
  readonly labelKind: LabelKind;
  readonly cropsPerImage: number;
  /** The images in batches, in order. */
  batches(options: BatchOptions): AsyncIterable<ImageBatch>;
}

/**
 * Decodes and preprocesses a dataset's images on a pool of worker threads. Batches come out in order
 * whichever worker finishes first, and the random augmentations depend only on (seed, epoch, index),
 * so a run is reproducible with any number of workers.
 */
export class ImagePipeline implements BatchSource {
  readonly sampleShape: readonly number[];
  readonly cropsPerImage: number;
  private readonly skippedImages: SkippedImage[] = [];
  private readonly maxPixels: number;

  private constructor(
    private readonly dataset: ImageDataset,
    private readonly targets: Targets,
    private readonly pool: DecodePool,
    private readonly options: PipelineOptions,
  ) {
    this.sampleShape = transformedShape(options.transform);
    this.cropsPerImage = cropsPerImage(options.transform);
    this.maxPixels = decodePixelLimit({ workers: pool.size, maxImagePixels: options.maxImagePixels });
  }

  /** Starts the decoding workers for a dataset. */
  static async create(dataset: ImageDataset, options: PipelineOptions): Promise<ImagePipeline> {
    validateTransform(options.transform);
    const targets = await dataset.targets();
    const pool = await DecodePool.create(options.workers ?? availableParallelism(), options.decoder ?? 'auto');
    return new ImagePipeline(dataset, targets, pool, options);
  }

  get count(): number {
    return this.dataset.length;
  }

  get classNames(): readonly string[] {
    return this.dataset.classNames;
  }

  get labelKind(): LabelKind {
    return this.dataset.labelKind;
  }

  /** Every image skipped so far (the warning count is its length). */
  get skipped(): readonly SkippedImage[] {
    return this.skippedImages;
  }

  /** The images at `indices`, decoded and transformed, split across the workers. */
  async read(indices: readonly number[], epoch = 0): Promise<ImageBatch> {
    return this.counted(await this.readBatch(indices, epoch, 0, this.options.skipBadImages === true));
  }

  /**
   * Batches in `order` (default the dataset's), decoded ahead. A batch's images live in one of a few
   * buffers the pipeline reuses: they stay intact until the next batch is asked for.
   */
  async *batches(options: BatchOptions): AsyncGenerator<ImageBatch> {
    const { batchSize, start = 0, epoch = 0 } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
    const order = options.order ?? Array.from({ length: this.count }, (_, i) => i);
    const stop = Math.min(options.end ?? order.length, order.length);
    const ahead = 1 + (this.options.prefetch ?? 2);
    // One buffer per batch in flight and one for the batch the caller holds.
    const rowSize = this.cropsPerImage * sizeOf(this.sampleShape);
    const buffers = Array.from({ length: ahead + 1 }, () => new SharedArrayBuffer(batchSize * rowSize * Float32Array.BYTES_PER_ELEMENT));
    const pending: Promise<ImageBatch>[] = [];
    let next = start;
    let launched = 0;
    const launch = () => {
      const end = Math.min(next + batchSize, stop);
      const buffer = buffers[launched++ % buffers.length];
      const batch = this.readBatch(order.slice(next, end), epoch, end, this.options.skipBadImages === true, buffer);
      // Rejections surface when the batch is awaited; this keeps them from counting as unhandled before that.
      batch.catch(() => {});
      pending.push(batch);
      next = end;
    };
    try {
      while (pending.length < ahead && next < stop) launch();
      while (pending.length > 0) {
        const batch = await pending.shift()!;
        if (next < stop) launch();
        yield this.counted(batch);
      }
    } finally {
      pending.length = 0;
    }
  }

  /** Random access for training, one row per image; a bad image is an error here, since a row cannot be skipped. */
  sampleSource(epoch = 0): SampleSource {
    if (this.cropsPerImage !== 1) throw new Error("a 'ten-crop' pipeline yields 10 rows per image; read it with batches()");
    return {
      count: this.count,
      sampleShape: this.sampleShape,
      read: async (indices) => (await this.readBatch(indices, epoch, 0, false)).images,
    };
  }

  /** Stops the decoding workers. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Records a batch's skipped images as it is handed out, so `skipped` lists them in iteration order. */
  private counted(batch: ImageBatch): ImageBatch {
    this.skippedImages.push(...batch.skipped);
    return batch;
  }

  private async readBatch(
    indices: readonly number[],
    epoch: number,
    nextStart: number,
    skip: boolean,
    buffer?: SharedArrayBuffer,
  ): Promise<ImageBatch> {
    const refs = await this.dataset.images(indices);
    const seed = this.options.transform.seed ?? 0;
    const items = refs.map((ref, i) => ({ ref, seed: mixSeed(seed, epoch, indices[i]) }));
    const rowSize = this.cropsPerImage * sizeOf(this.sampleShape);
    const target = buffer ?? new SharedArrayBuffer(items.length * rowSize * Float32Array.BYTES_PER_ELEMENT);
    const chunkCount = Math.max(1, Math.min(this.pool.size, items.length));
    const chunkSize = Math.ceil(items.length / chunkCount);
    const chunks: Promise<DecodeResult>[] = [];
    for (let first = 0; first < items.length; first += chunkSize) {
      chunks.push(
        this.pool.run({
          items: items.slice(first, first + chunkSize),
          transform: this.options.transform,
          decoder: this.options.decoder ?? 'auto',
          into: { buffer: target, offset: first * rowSize },
          maxPixels: this.maxPixels,
        }),
      );
    }
    const results = await Promise.all(chunks);
    const failed = new Map<number, SkippedImage>();
    results.forEach((result, chunk) => {
      for (const failure of result.failures) {
        const position = chunk * chunkSize + failure.position;
        failed.set(position, { index: indices[position], path: failure.path, problem: failure.problem });
      }
    });
    if (failed.size > 0 && !skip) {
      const [first] = failed.values();
      throw new DatasetFileError(
        first.path,
        `${first.problem} (skip such files with --skip-bad-images, or skipBadImages: true through the API${failed.size > 1 ? `; ${failed.size - 1} more in this batch` : ''})`,
      );
    }
    const kept = indices.flatMap((_, position) => (failed.has(position) ? [] : [position]));
    const keptIndices = kept.map((position) => indices[position]);
    // The rows are in place; skipped images' rows are closed up.
    const data = new Float32Array(target, 0, kept.length * rowSize);
    kept.forEach((position, row) => {
      if (position !== row) data.copyWithin(row * rowSize, position * rowSize, (position + 1) * rowSize);
    });
    return {
      indices: keptIndices,
      images: { shape: [kept.length * this.cropsPerImage, ...this.sampleShape], data },
      targets: selectTargets(this.targets, keptIndices),
      skipped: [...failed.values()],
      nextStart,
    };
  }
}
