import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import {
  atomicTempTarget,
  batchBuffer,
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

const MANIFEST = FEATURE_CACHE_MANIFEST;
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
 * Rows are then read from the shard files directly into the batch (runs of consecutive rows in one
 * read), with each shard's size checked: no shard is held in memory.
 */
export async function openFeatureCache(directory: string, expectedKey: FeatureCacheKey): Promise<FeatureCache> {
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
  const reader = new ShardRowReader(directory, manifest);
  return {
    manifest,
    targets,
    verification,
    source: {
      count: rows,
      sampleShape: manifest.sampleShape,
      async read(indices, into) {
        const out = batchBuffer(indices.length * rowSize, into);
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
          reader.read(
            shard,
            positions.map((position) => indices[position] - shardStarts[shard]),
            positions,
            out,
          );
        }
        return { shape: [indices.length, ...manifest.sampleShape], data: out };
      },
    },
  };
}

/**
 * Reads rows of a cache's shards into a batch with synchronous positioned reads: from the page cache
 * these take microseconds, where each asynchronous read is a round trip through libuv's thread pool.
 */
class ShardRowReader {
  private readonly rowValues: number;
  private readonly rowBytes: number;
  /** Stored float16 rows before conversion; grown as needed. */
  private halfScratch = new Uint16Array(0);

  constructor(
    private readonly directory: string,
    private readonly manifest: FeatureCacheManifest,
  ) {
    this.rowValues = sizeOf(manifest.sampleShape);
    this.rowBytes = this.rowValues * (manifest.dtype === 'float16' ? 2 : 4);
  }

  /** Rows `rows` of shard `shard` into `out` at batch positions `positions` (both in the same order). */
  read(shard: number, rows: readonly number[], positions: readonly number[], out: Float32Array): void {
    const entry = this.manifest.shards[shard];
    const path = join(this.directory, entry.file);
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      const { size } = fstatSync(fd);
      if (size !== entry.bytes)
        throw new DatasetFileError(path, `has ${size} bytes, the manifest says ${entry.bytes}: truncated or replaced`);
      for (let k = 0; k < rows.length; ) {
        // A run of rows consecutive in both the shard and the batch is one read.
        let length = 1;
        while (k + length < rows.length && rows[k + length] === rows[k] + length && positions[k + length] === positions[k] + length)
          length++;
        this.readRun(fd, path, rows[k], length, out, positions[k] * this.rowValues);
        k += length;
      }
    } catch (error) {
      if (error instanceof DatasetFileError) throw error;
      throw fileSystemError(path, error);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  private readRun(fd: number, path: string, row: number, length: number, out: Float32Array, at: number): void {
    const bytes = length * this.rowBytes;
    const target =
      this.manifest.dtype === 'float16'
        ? this.scratch(length * this.rowValues)
        : new Uint8Array(out.buffer, out.byteOffset + at * 4, bytes);
    const view = new Uint8Array(target.buffer, target.byteOffset, bytes);
    let done = 0;
    while (done < bytes) {
      const read = readSync(fd, view, done, bytes - done, row * this.rowBytes + done);
      if (read === 0) throw new DatasetFileError(path, `ended before its row ${row + length}: truncated`);
      done += read;
    }
    if (target instanceof Uint16Array) float16ToFloat32(target, out.subarray(at, at + length * this.rowValues));
  }

  private scratch(values: number): Uint16Array {
    if (this.halfScratch.length < values) this.halfScratch = new Uint16Array(values);
    return this.halfScratch.subarray(0, values);
  }
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
