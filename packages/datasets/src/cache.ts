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
  /** The shard size aimed at, in rows (`shardBytes` over the row size). */
  readonly rowsPerShard: number;
  /**
   * The shard plan: shard i covers the source positions [i·imagesPerShard, (i+1)·imagesPerShard), a
   * whole number of batches, so any machine can write any shard and get the same bytes.
   */
  readonly imagesPerShard: number;
  /** Indices of the planned shards not written yet: what an interrupted extraction still has to do. */
  readonly missingShards: readonly number[];
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

/** What a cache's plan needs to know about its source before reading any image. */
export type CacheSourceInfo = Pick<BatchSource, 'count' | 'classNames' | 'labelKind' | 'cropsPerImage'>;

/** What a feature cache's plan (its shards and manifest) is made from. */
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

const MANIFEST = FEATURE_CACHE_MANIFEST;
const DEFAULT_SHARD_BYTES = 64 * 2 ** 20;
/** A read loads a whole shard when it wants at least 1/WHOLE_SHARD_FRACTION of its rows. */
const WHOLE_SHARD_FRACTION = 8;

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
  const manifest = await readManifest(directory);
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

/** Refuses a cache started for another key, or from another source or storage type. */
export function checkCacheMatches(
  directory: string,
  manifest: FeatureCacheManifest,
  wanted: { readonly key: FeatureCacheKey; readonly source: CacheSourceInfo; readonly dtype: FeatureDtype },
): void {
  refuseMismatch(directory, manifest, wanted.key);
  const started = {
    dtype: manifest.dtype,
    sourceCount: manifest.sourceCount,
    cropsPerImage: manifest.cropsPerImage,
    classNames: manifest.classNames,
  };
  const { source } = wanted;
  const now = { dtype: wanted.dtype, sourceCount: source.count, cropsPerImage: source.cropsPerImage, classNames: source.classNames };
  const difference = firstDifference(started, now);
  if (difference) {
    throw new Error(
      `cannot resume the feature cache at ${directory}: ${difference.path} was ${show(difference.stored)} when it was started, now ${show(difference.wanted)}`,
    );
  }
}

/** The source positions shard `index` covers. */
export function shardSpan(manifest: FeatureCacheManifest, index: number): { readonly start: number; readonly end: number } {
  const start = index * manifest.imagesPerShard;
  if (!Number.isInteger(index) || index < 0 || start >= manifest.sourceCount) {
    throw new RangeError(`shard ${index} is not in the plan of this cache (${plannedShards(manifest)} shards)`);
  }
  return { start, end: Math.min(start + manifest.imagesPerShard, manifest.sourceCount) };
}

function plannedShards(manifest: Pick<FeatureCacheManifest, 'sourceCount' | 'imagesPerShard'>): number {
  return Math.ceil(manifest.sourceCount / manifest.imagesPerShard);
}

function shardFile(index: number): string {
  return `shard-${String(index).padStart(5, '0')}.bin`;
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

/** Source images covered by the shards written so far. */
export function progressOf(manifest: FeatureCacheManifest): FeatureCacheProgress {
  const missing = manifest.missingShards.reduce((total, index) => {
    const { start, end } = shardSpan(manifest, index);
    return total + end - start;
  }, 0);
  return { done: manifest.sourceCount - missing, total: manifest.sourceCount, shards: manifest.shards.length };
}

/** The manifest in `directory`, or undefined when there is none. */
export async function readFeatureCacheManifest(directory: string): Promise<FeatureCacheManifest | undefined> {
  return readManifest(directory);
}

async function writeManifest(directory: string, manifest: FeatureCacheManifest): Promise<void> {
  await writeFileAtomic(join(directory, MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
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
  source: CacheSourceInfo,
  rowsPerShard: number,
  imagesPerShard: number,
): FeatureCacheManifest {
  const shardCount = plannedShards({ sourceCount: source.count, imagesPerShard });
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
    imagesPerShard,
    missingShards: Array.from({ length: shardCount }, (_, index) => index),
    shards: [],
    complete: shardCount === 0,
    counts: { images: 0, rows: 0, skipped: 0 },
  };
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
