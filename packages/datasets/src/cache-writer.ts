import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicTempTarget, foreignEntries, formatShape, type HostTensor, lockDirectory, sameShape, sizeOf } from '@gradfeat/core';
import { checkCacheMatches } from './cache-key.js';
import {
  type CacheSourceInfo,
  type FeatureCacheKey,
  type FeatureCacheManifest,
  type FeatureCacheProgress,
  type FeatureDtype,
  newManifest,
  progressOf,
  readFeatureCacheManifest,
  requireLittleEndian,
  type ShardEntry,
  sha256,
  shardFile,
  shardSpan,
  writeManifest,
} from './cache-manifest.js';
import { targetsToJson } from './cache-targets.js';
import { fileSystemError } from './errors.js';
import { writeFileAtomic } from './files.js';
import { float32ToFloat16 } from './float16.js';
import type { BatchSource, SkippedImage } from './pipeline.js';
import { concatTargets } from './targets.js';
import type { Targets } from './types.js';

/** What fixes a cache's plan (its shards and their rows) before any image is read. */
export interface FeatureCachePlanOptions {
  readonly key: FeatureCacheKey;
  readonly source: CacheSourceInfo;
  /** Shape of one output row, without the batch dimension (e.g. the trunk's output shape). */
  readonly sampleShape: readonly number[];
  /** Images per batch; a shard holds a whole number of batches. */
  readonly batchSize: number;
  /** Storage type; float16 halves the size (values are rounded to nearest even). Default float32. */
  readonly dtype?: FeatureDtype;
  /** Approximate shard size. Default 64 MiB. */
  readonly shardBytes?: number;
}

/** Writes shards: runs `extract` over batches of `source`. */
export interface ShardWriter {
  readonly source: BatchSource;
  /** Runs the trunk on a batch of preprocessed images: [rows, ...] → [rows, ...sampleShape]. */
  readonly extract: (batch: HostTensor) => Promise<HostTensor>;
  readonly batchSize: number;
}

export interface WriteFeatureCacheOptions extends Omit<FeatureCachePlanOptions, 'source'>, ShardWriter {
  /** Called as shards are written. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
}

const DEFAULT_SHARD_BYTES = 64 * 2 ** 20;

/**
 * Runs `extract` over every batch of `source` and stores the outputs in planned shards beside a JSON
 * manifest. Each shard is written atomically and recorded in the manifest after it, so a killed run
 * resumes with the shards still missing when called again with the same options. A directory holding
 * a cache for another key, or anything but a cache, is refused, never overwritten; so is a second
 * extraction into the same directory while one runs (the error names it).
 */
export async function writeFeatureCache(directory: string, options: WriteFeatureCacheOptions): Promise<FeatureCacheManifest> {
  await makeDirectory(directory);
  const lock = await lockDirectory(directory, 'gradfeat feature-cache extraction');
  try {
    let manifest = await startFeatureCache(directory, options);
    for (const index of manifest.missingShards) {
      const entry = await writeCacheShard(directory, manifest, index, options);
      manifest = await recordShard(directory, manifest, entry);
      options.onProgress?.(progressOf(manifest));
    }
    if (manifest.counts.rows === 0) {
      throw new Error(`no image of ${manifest.sourceCount} could be read, so there is nothing to cache in ${directory}`);
    }
    return manifest;
  } finally {
    await lock.release();
  }
}

async function makeDirectory(directory: string): Promise<void> {
  await mkdir(directory, { recursive: true }).catch((error) => {
    throw fileSystemError(directory, error);
  });
}

/**
 * Opens the cache in `directory` to be filled: a new one gets its shard plan, an interrupted one must
 * have been started with the same key and source, and a complete one is returned as it is. Removes
 * what interrupted shard writes left behind. `missingShards` of the result is the work to do.
 */
export async function startFeatureCache(directory: string, options: FeatureCachePlanOptions): Promise<FeatureCacheManifest> {
  requireLittleEndian();
  await makeDirectory(directory);
  const { source, key } = options;
  const dtype = options.dtype ?? 'float32';
  const manifest = await readFeatureCacheManifest(directory);
  if (manifest) {
    checkCacheMatches(directory, manifest, { key, source, dtype });
    if (manifest.complete) return manifest;
    if (manifest.imagesPerShard === undefined) {
      throw new Error(
        `the feature cache at ${directory} was started by an earlier gradfeat without a shard plan; delete it to extract again`,
      );
    }
    await removeTemporaryFiles(directory);
    return manifest;
  }
  const foreign = await foreignEntries(directory);
  if (foreign.length > 0) {
    throw new Error(
      `${directory}: holds files that are not a gradfeat feature cache (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? `, ${foreign.length - 5} more` : ''}); choose an empty directory for the cache`,
    );
  }
  const rowBytes = sizeOf(options.sampleShape) * (dtype === 'float16' ? 2 : 4);
  const rowsPerShard = Math.max(source.cropsPerImage, Math.floor((options.shardBytes ?? DEFAULT_SHARD_BYTES) / rowBytes));
  // Whole batches: a shard closes at the first batch boundary once it holds rowsPerShard rows.
  const batchRows = options.batchSize * source.cropsPerImage;
  const imagesPerShard = Math.ceil(rowsPerShard / batchRows) * options.batchSize;
  const created = newManifest(key, dtype, options.sampleShape, source, rowsPerShard, imagesPerShard);
  await removeTemporaryFiles(directory);
  await writeManifest(directory, created);
  return created;
}

/**
 * Writes shard `index` of a planned cache: its file atomically, the same bytes on any machine and on
 * every retry. Returns the shard's manifest entry; `recordShard` adds it to the manifest.
 */
export async function writeCacheShard(
  directory: string,
  manifest: FeatureCacheManifest,
  index: number,
  writer: ShardWriter,
): Promise<ShardEntry> {
  requireLittleEndian();
  const { start, end } = shardSpan(manifest, index);
  const { source } = writer;
  const parts: Float32Array[] = [];
  const targets: Targets[] = [];
  const skipped: SkippedImage[] = [];
  let images = 0;
  let rows = 0;
  for await (const batch of source.batches({ batchSize: writer.batchSize, start, end })) {
    if (batch.nextStart > end) throw new Error(`the source yielded a batch past position ${end}, the end of shard ${index}`);
    if (batch.indices.length > 0) {
      const output = await writer.extract(batch.images);
      if (output.shape[0] !== batch.images.shape[0]) {
        throw new Error(`extract returned ${output.shape[0]} rows for a batch of ${batch.images.shape[0]}`);
      }
      const rowShape = output.shape.slice(1);
      if (!sameShape(manifest.sampleShape, rowShape)) {
        throw new Error(`extract returned rows of shape ${formatShape(rowShape)}, the cache holds ${formatShape(manifest.sampleShape)}`);
      }
      parts.push(output.data);
      rows += output.shape[0];
      images += batch.indices.length;
    }
    targets.push(batch.targets);
    skipped.push(...batch.skipped);
    if (batch.nextStart === end) break;
  }
  const features = new Float32Array(rows * sizeOf(manifest.sampleShape));
  let offset = 0;
  for (const part of parts) {
    features.set(part, offset);
    offset += part.length;
  }
  const stored = manifest.dtype === 'float16' ? float32ToFloat16(features) : features;
  const bytes = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
  const file = shardFile(index);
  await writeFileAtomic(join(directory, file), bytes);
  return {
    file,
    rows,
    images,
    sourceStart: start,
    sourceEnd: end,
    bytes: bytes.length,
    sha256: sha256(bytes),
    targets: targetsToJson(concatTargets(targets, manifest.labelKind, manifest.classNames.length)),
    skipped,
  };
}

/** Adds a written shard to the manifest (atomically replaced); the cache is complete once none is missing. */
export async function recordShard(directory: string, manifest: FeatureCacheManifest, shard: ShardEntry): Promise<FeatureCacheManifest> {
  const index = shard.sourceStart / manifest.imagesPerShard;
  if (shard.file !== shardFile(index) || shard.sourceEnd !== shardSpan(manifest, index).end) {
    throw new Error(`${shard.file} (source positions ${shard.sourceStart}–${shard.sourceEnd}) is not a shard of the plan of ${directory}`);
  }
  if (!manifest.missingShards.includes(index)) return manifest;
  const shards = [...manifest.shards, shard].sort((a, b) => a.sourceStart - b.sourceStart);
  const missingShards = manifest.missingShards.filter((missing) => missing !== index);
  const updated: FeatureCacheManifest = {
    ...manifest,
    shards,
    missingShards,
    complete: missingShards.length === 0,
    counts: {
      images: manifest.counts.images + shard.images,
      rows: manifest.counts.rows + shard.rows,
      skipped: manifest.counts.skipped + shard.skipped.length,
    },
  };
  await writeManifest(directory, updated);
  return updated;
}

/** Leftovers of interrupted atomic writes; never another file, whatever its name. */
async function removeTemporaryFiles(directory: string): Promise<void> {
  for (const name of await readdir(directory)) {
    if (atomicTempTarget(name) !== undefined) await rm(join(directory, name), { force: true });
  }
}
