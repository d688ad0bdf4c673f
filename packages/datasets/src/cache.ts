import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import {
  atomicTempTarget,
  FEATURE_CACHE_FORMAT,
  FEATURE_CACHE_MANIFEST,
  foreignEntries,
  formatShape,
  type HostTensor,
  lockDirectory,
  type SampleSource,
  sameShape,
  sizeOf,
} from '@gradfeat/core';
import { checkManifest } from './cache-manifest.js';
import { DatasetFileError, fileSystemError } from './errors.js';
import { isFile, writeFileAtomic } from './files.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';
import type { BatchSource, SkippedImage } from './pipeline.js';
import { type ShardVerification, verifyShards } from './shard-verify.js';
import { concatTargets, targetCount } from './targets.js';
import type { LabelKind, Targets } from './types.js';

/** What the cached features were computed from; a cache is only ever reused for an identical key. */
export interface FeatureCacheKey {
  /** Hash of the model file (or of its weights). */
  readonly modelHash: string;
  /** Name of the node whose output is cached (the end of the frozen trunk θ1). */
  readonly cut: string;
  /** The preprocessing applied to the images (JSON data, e.g. the TransformSpec). */
  readonly preprocessing: unknown;
  /** Which images, e.g. 'cifar10:/data/cifar10 train'. */
  readonly dataset: string;
}

/** How cached values are stored. */
export type FeatureDtype = 'float32' | 'float16';

type ShardTargets = { readonly labels: number[] } | { readonly positive: number[][]; readonly difficult: number[][] };

/** One shard of a feature cache: its rows, source images, checksum and targets. */
export interface ShardEntry {
  readonly file: string;
  /** Feature rows (images × crops). */
  readonly rows: number;
  readonly images: number;
  /** The range of the source's iteration positions this shard covers, skipped images included. */
  readonly sourceStart: number;
  readonly sourceEnd: number;
  readonly bytes: number;
  readonly sha256: string;
  /** One entry per image: class indices, or per-image lists of positive and difficult class indices. */
  readonly targets: ShardTargets;
  readonly skipped: readonly SkippedImage[];
}

/** A feature cache's manifest.json. */
export interface FeatureCacheManifest {
  readonly format: typeof FEATURE_CACHE_FORMAT;
  readonly version: 1;
  readonly key: FeatureCacheKey;
  readonly dtype: FeatureDtype;
  /** Shape of one row, without the batch dimension. */
  readonly sampleShape: readonly number[];
  readonly cropsPerImage: number;
  readonly classNames: readonly string[];
  readonly labelKind: LabelKind;
  /** Images in the source, bad ones included. */
  readonly sourceCount: number;
  /** A shard is closed at the first batch boundary once it holds this many rows. */
  readonly rowsPerShard: number;
  readonly shards: readonly ShardEntry[];
  readonly complete: boolean;
  readonly counts: { readonly images: number; readonly rows: number; readonly skipped: number };
}

/** Progress of writing a feature cache. */
export interface FeatureCacheProgress {
  /** Source images consumed so far (kept or skipped), and in all. */
  readonly done: number;
  readonly total: number;
  readonly shards: number;
}

/** What `writeFeatureCache` extracts and how. */
export interface WriteFeatureCacheOptions {
  readonly key: FeatureCacheKey;
  readonly source: BatchSource;
  /** Runs the trunk on a batch of preprocessed images: [rows, ...] → [rows, ...feature shape]. */
  readonly extract: (batch: HostTensor) => Promise<HostTensor>;
  readonly batchSize: number;
  /** Storage type; float16 halves the size (values are rounded to nearest even). Default float32. */
  readonly dtype?: FeatureDtype;
  /** Approximate shard size. Default 64 MiB. */
  readonly shardBytes?: number;
  /** Called as shards are written. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
}

const MANIFEST = FEATURE_CACHE_MANIFEST;
const DEFAULT_SHARD_BYTES = 64 * 2 ** 20;
/** A read loads a whole shard when it wants at least 1/WHOLE_SHARD_FRACTION of its rows. */
const WHOLE_SHARD_FRACTION = 8;

/**
 * Runs `extract` over every batch of `source` and stores the outputs in shards beside a JSON manifest.
 * Each shard is written atomically and the manifest updated after it, so a killed run resumes from its
 * last complete shard when called again with the same options. A directory holding a cache for another
 * key, or anything but a cache, is refused, never overwritten.
 */
export async function writeFeatureCache(directory: string, options: WriteFeatureCacheOptions): Promise<FeatureCacheManifest> {
  requireLittleEndian();
  await mkdir(directory, { recursive: true }).catch((error) => {
    throw fileSystemError(directory, error);
  });
  // One writer at a time: a second extraction into the same directory is refused, naming the first.
  const lock = await lockDirectory(directory, 'gradfeat feature-cache extraction');
  try {
    return await writeLocked(directory, options);
  } finally {
    await lock.release();
  }
}

async function writeLocked(directory: string, options: WriteFeatureCacheOptions): Promise<FeatureCacheManifest> {
  const { source, key } = options;
  const dtype = options.dtype ?? 'float32';
  let manifest = await readManifest(directory);
  if (manifest) {
    refuseMismatch(directory, manifest, key);
    const started = {
      dtype: manifest.dtype,
      sourceCount: manifest.sourceCount,
      cropsPerImage: manifest.cropsPerImage,
      classNames: manifest.classNames,
    };
    const now = { dtype, sourceCount: source.count, cropsPerImage: source.cropsPerImage, classNames: source.classNames };
    const difference = firstDifference(started, now);
    if (difference) {
      throw new Error(
        `cannot resume the feature cache at ${directory}: ${difference.path} was ${show(difference.stored)} when it was started, now ${show(difference.wanted)}`,
      );
    }
    if (manifest.complete) return manifest;
  } else {
    const foreign = await foreignEntries(directory);
    if (foreign.length > 0) {
      throw new Error(
        `${directory}: holds files that are not a gradfeat feature cache (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? `, ${foreign.length - 5} more` : ''}); choose an empty directory for the cache`,
      );
    }
  }
  await removeTemporaryFiles(directory);

  let pending: { rows: Float32Array[]; targets: Targets[]; images: number; rowCount: number; skipped: SkippedImage[] } = emptyPending();
  let sourceStart = manifest?.shards.at(-1)?.sourceEnd ?? 0;
  let sampleShape = manifest?.sampleShape;

  const flush = async (sourceEnd: number) => {
    const rowSize = sizeOf(sampleShape!);
    const features = new Float32Array(pending.rowCount * rowSize);
    let offset = 0;
    for (const rows of pending.rows) {
      features.set(rows, offset);
      offset += rows.length;
    }
    const stored = dtype === 'float16' ? float32ToFloat16(features) : features;
    const bytes = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
    const shardIndex = manifest!.shards.length;
    const file = `shard-${String(shardIndex).padStart(5, '0')}.bin`;
    await writeFileAtomic(join(directory, file), bytes);
    const shard: ShardEntry = {
      file,
      rows: pending.rowCount,
      images: pending.images,
      sourceStart,
      sourceEnd,
      bytes: bytes.length,
      sha256: sha256(bytes),
      targets: targetsToJson(concatTargets(pending.targets, source.labelKind, source.classNames.length)),
      skipped: pending.skipped,
    };
    manifest = withShard(manifest!, shard, sourceEnd === source.count);
    await writeManifest(directory, manifest);
    sourceStart = sourceEnd;
    pending = emptyPending();
  };

  for await (const batch of source.batches({ batchSize: options.batchSize, start: sourceStart })) {
    if (batch.indices.length > 0) {
      const output = await options.extract(batch.images);
      if (output.shape[0] !== batch.images.shape[0]) {
        throw new Error(`extract returned ${output.shape[0]} rows for a batch of ${batch.images.shape[0]}`);
      }
      const rowShape = output.shape.slice(1);
      if (sampleShape && !sameShape(sampleShape, rowShape)) {
        throw new Error(`extract returned rows of shape ${formatShape(rowShape)}, earlier batches ${formatShape(sampleShape)}`);
      }
      if (!manifest) {
        sampleShape = rowShape;
        const rowBytes = sizeOf(rowShape) * (dtype === 'float16' ? 2 : 4);
        const rowsPerShard = Math.max(source.cropsPerImage, Math.floor((options.shardBytes ?? DEFAULT_SHARD_BYTES) / rowBytes));
        manifest = newManifest(key, dtype, rowShape, source, rowsPerShard);
        // Before any shard, so that the directory is recognisably a cache from then on.
        await writeManifest(directory, manifest);
      }
      pending.rows.push(output.data);
      pending.rowCount += output.shape[0];
      pending.images += batch.indices.length;
    }
    pending.targets.push(batch.targets);
    pending.skipped.push(...batch.skipped);
    const done = batch.nextStart;
    if (manifest && (pending.rowCount >= manifest.rowsPerShard || done === source.count) && pending.rowCount > 0) await flush(done);
    options.onProgress?.({ done, total: source.count, shards: manifest?.shards.length ?? 0 });
  }
  if (!manifest) throw new Error(`no image of ${source.count} could be read, so there is nothing to cache in ${directory}`);
  if (!manifest.complete) {
    // Only skipped images after the last stored row: close the cache with an empty shard that records them.
    await flush(source.count);
  }
  return manifest;
}

/** An opened, complete feature cache. */
export interface FeatureCache {
  readonly manifest: FeatureCacheManifest;
  /** One row per cached feature tensor (images × cropsPerImage rows; an image's crops are consecutive). */
  readonly source: SampleSource;
  /** One entry per image. */
  readonly targets: Targets;
  /** Every shard was checked against its checksum when the cache was opened; what that read and cost. */
  readonly verification: ShardVerification;
}

/**
 * Opens a complete cache made for exactly `expectedKey`; a different key is refused with the field
 * that differs. Every shard's checksum is verified first, so damage is found before any row is used.
 * Reads taking a good part of a shard load it whole, verified against its checksum, and keep it in an
 * LRU of at most `maxCachedShards` shards; scattered rows are read from the file directly.
 */
export async function openFeatureCache(
  directory: string,
  expectedKey: FeatureCacheKey,
  options: { readonly maxCachedShards?: number } = {},
): Promise<FeatureCache> {
  requireLittleEndian();
  const manifest = await readManifest(directory);
  if (!manifest) throw new DatasetFileError(join(directory, MANIFEST), 'not found: no feature cache in this directory');
  refuseMismatch(directory, manifest, expectedKey);
  if (!manifest.complete) {
    throw new Error(
      `the feature cache at ${directory} is incomplete (${manifest.counts.images} of ${manifest.sourceCount} images): extraction was interrupted; run it again to resume`,
    );
  }
  const verification = await verifyShards(directory, manifest.shards);
  const rowSize = sizeOf(manifest.sampleShape);
  const shardStarts: number[] = [];
  let rows = 0;
  for (const shard of manifest.shards) {
    shardStarts.push(rows);
    rows += shard.rows;
  }
  const maxCachedShards = options.maxCachedShards ?? 4;
  const loaded = new Map<number, Promise<Float32Array>>();
  const shardData = (index: number): Promise<Float32Array> => {
    let data = loaded.get(index);
    if (data) loaded.delete(index);
    else data = loadShard(directory, manifest, manifest.shards[index]);
    loaded.set(index, data);
    // Evict the least recently used; reads already holding its promise still complete.
    while (loaded.size > maxCachedShards) loaded.delete(loaded.keys().next().value!);
    data.catch(() => loaded.delete(index));
    return data;
  };
  const shardOf = (row: number): number => {
    let low = 0;
    let high = shardStarts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (shardStarts[middle] <= row) low = middle;
      else high = middle - 1;
    }
    return low;
  };
  const targets = concatTargets(
    manifest.shards.map((shard) => targetsFromJson(shard.targets, manifest.labelKind, manifest.classNames.length)),
    manifest.labelKind,
    manifest.classNames.length,
  );
  return {
    manifest,
    targets,
    verification,
    source: {
      count: rows,
      sampleShape: manifest.sampleShape,
      async read(indices) {
        const out = new Float32Array(indices.length * rowSize);
        for (const index of indices) {
          if (!Number.isInteger(index) || index < 0 || index >= rows)
            throw new RangeError(`feature row ${index} is outside 0..${rows - 1}`);
        }
        const byShard = new Map<number, number[]>();
        indices.forEach((index, position) => {
          const shard = shardOf(index);
          const positions = byShard.get(shard);
          if (positions) positions.push(position);
          else byShard.set(shard, [position]);
        });
        for (const [shard, positions] of byShard) {
          const rowsInShard = positions.map((position) => indices[position] - shardStarts[shard]);
          // A batch taking a good part of a shard (sequential reading) loads it whole and keeps it; scattered
          // rows (shuffled reading) are read one by one, so random access does not reload whole shards.
          if (loaded.has(shard) || positions.length * WHOLE_SHARD_FRACTION >= manifest.shards[shard].rows) {
            const data = await shardData(shard);
            rowsInShard.forEach((row, k) => {
              out.set(data.subarray(row * rowSize, (row + 1) * rowSize), positions[k] * rowSize);
            });
          } else {
            const data = await readShardRows(directory, manifest, manifest.shards[shard], rowsInShard);
            positions.forEach((position, k) => {
              out.set(data.subarray(k * rowSize, (k + 1) * rowSize), position * rowSize);
            });
          }
        }
        return { shape: [indices.length, ...manifest.sampleShape], data: out };
      },
    },
  };
}

/** Rows of one shard read individually; the shard's size is checked, its checksum only when loaded whole. */
async function readShardRows(
  directory: string,
  manifest: FeatureCacheManifest,
  shard: ShardEntry,
  rows: readonly number[],
): Promise<Float32Array> {
  const path = join(directory, shard.file);
  const handle = await open(path, 'r').catch((error) => {
    throw fileSystemError(path, error);
  });
  try {
    const { size } = await handle.stat();
    if (size !== shard.bytes)
      throw new DatasetFileError(path, `has ${size} bytes, the manifest says ${shard.bytes}: truncated or replaced`);
    const rowBytes = shard.bytes / shard.rows;
    const bytes = new Uint8Array(rows.length * rowBytes);
    for (const [k, row] of rows.entries()) {
      await handle.read(bytes, k * rowBytes, rowBytes, row * rowBytes);
    }
    return manifest.dtype === 'float16' ? float16ToFloat32(new Uint16Array(bytes.buffer)) : new Float32Array(bytes.buffer);
  } finally {
    await handle.close();
  }
}

async function loadShard(directory: string, manifest: FeatureCacheManifest, shard: ShardEntry): Promise<Float32Array> {
  const path = join(directory, shard.file);
  const bytes = await readFile(path).catch((error) => {
    throw fileSystemError(path, error);
  });
  if (bytes.length !== shard.bytes)
    throw new DatasetFileError(path, `has ${bytes.length} bytes, the manifest says ${shard.bytes}: truncated or replaced`);
  if (sha256(bytes) !== shard.sha256) throw new DatasetFileError(path, 'checksum does not match the manifest: the shard is corrupted');
  // Copy into a fresh, aligned buffer: a Buffer may start at any byte offset.
  const aligned = new Uint8Array(bytes).buffer;
  return manifest.dtype === 'float16' ? float16ToFloat32(new Uint16Array(aligned)) : new Float32Array(aligned);
}

async function readManifest(directory: string): Promise<FeatureCacheManifest | undefined> {
  const path = join(directory, MANIFEST);
  if (!(await isFile(path))) return undefined;
  let manifest: unknown;
  try {
    manifest = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new DatasetFileError(path, `is not valid JSON (${(error as Error).message})`);
  }
  return checkManifest(path, manifest);
}

function refuseMismatch(directory: string, manifest: FeatureCacheManifest, key: FeatureCacheKey): void {
  const difference = firstDifference(manifest.key, key, 'key');
  if (difference) {
    throw new Error(
      `the feature cache at ${directory} was made for something else: ${difference.path} is ${show(difference.stored)} in the cache but ${show(difference.wanted)} was expected. Delete it or choose another directory.`,
    );
  }
}

interface Difference {
  readonly path: string;
  readonly stored: unknown;
  readonly wanted: unknown;
}

/**
 * The first place where two JSON values differ; undefined when equal. Values are compared as they
 * are stored (a JSON round trip drops undefined fields).
 */
function firstDifference(stored: unknown, wanted: unknown, path = ''): Difference | undefined {
  const walk = (a: unknown, b: unknown, at: string): Difference | undefined => {
    if (Array.isArray(a) && Array.isArray(b)) {
      if (a.length !== b.length) return { path: `${at}.length`, stored: a.length, wanted: b.length };
      for (let i = 0; i < a.length; i++) {
        const found = walk(a[i], b[i], `${at}[${i}]`);
        if (found) return found;
      }
      return undefined;
    }
    if (isRecord(a) && isRecord(b)) {
      for (const field of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
        const found = walk(a[field], b[field], at ? `${at}.${field}` : field);
        if (found) return found;
      }
      return undefined;
    }
    return a === b ? undefined : { path: at, stored: a, wanted: b };
  };
  return walk(jsonRoundTrip(stored), jsonRoundTrip(wanted), path);
}

function show(value: unknown): string {
  return value === undefined ? 'absent' : JSON.stringify(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonRoundTrip(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function newManifest(
  key: FeatureCacheKey,
  dtype: FeatureDtype,
  sampleShape: readonly number[],
  source: BatchSource,
  rowsPerShard: number,
): FeatureCacheManifest {
  return {
    format: FEATURE_CACHE_FORMAT,
    version: 1,
    key,
    dtype,
    sampleShape,
    cropsPerImage: source.cropsPerImage,
    classNames: source.classNames,
    labelKind: source.labelKind,
    sourceCount: source.count,
    rowsPerShard,
    shards: [],
    complete: false,
    counts: { images: 0, rows: 0, skipped: 0 },
  };
}

function withShard(manifest: FeatureCacheManifest, shard: ShardEntry, complete: boolean): FeatureCacheManifest {
  return {
    ...manifest,
    shards: [...manifest.shards, shard],
    complete,
    counts: {
      images: manifest.counts.images + shard.images,
      rows: manifest.counts.rows + shard.rows,
      skipped: manifest.counts.skipped + shard.skipped.length,
    },
  };
}

function emptyPending() {
  return { rows: [] as Float32Array[], targets: [] as Targets[], images: 0, rowCount: 0, skipped: [] as SkippedImage[] };
}

function targetsToJson(targets: Targets): ShardTargets {
  if (targets.kind === 'single-label') return { labels: [...targets.labels] };
  const classesWhere = (flags: Uint8Array) =>
    Array.from({ length: targetCount(targets) }, (_, image) =>
      Array.from(flags.subarray(image * targets.classCount, (image + 1) * targets.classCount)).flatMap((flag, c) => (flag ? [c] : [])),
    );
  return { positive: classesWhere(targets.positive), difficult: classesWhere(targets.difficult) };
}

function targetsFromJson(json: ShardTargets, kind: LabelKind, classCount: number): Targets {
  if (kind === 'single-label' && 'labels' in json) return { kind, classCount, labels: Int32Array.from(json.labels) };
  if (kind === 'multi-label' && 'positive' in json) {
    const flags = (lists: number[][]) => {
      const array = new Uint8Array(lists.length * classCount);
      lists.forEach((classes, image) => {
        for (const c of classes) array[image * classCount + c] = 1;
      });
      return array;
    };
    return { kind, classCount, positive: flags(json.positive), difficult: flags(json.difficult) };
  }
  throw new Error(`feature cache shard targets do not match the manifest's label kind '${kind}'`);
}

function writeManifest(directory: string, manifest: FeatureCacheManifest): Promise<void> {
  return writeFileAtomic(join(directory, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
}

/** Leftovers of interrupted atomic writes; never another file, whatever its name. */
async function removeTemporaryFiles(directory: string): Promise<void> {
  for (const name of await readdir(directory)) {
    if (atomicTempTarget(name) !== undefined) await rm(join(directory, name), { force: true });
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function requireLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('feature cache shards are little-endian; this big-endian machine cannot read or write them');
}
