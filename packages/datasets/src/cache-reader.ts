import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { batchBuffer, FEATURE_CACHE_MANIFEST, type SampleSource, sizeOf } from '@gradfeat/core';
import { refuseMismatch } from './cache-key.js';
import { type FeatureCacheKey, type FeatureCacheManifest, readFeatureCacheManifest, requireLittleEndian } from './cache-manifest.js';
import { targetsFromJson } from './cache-targets.js';
import { DatasetFileError, fileSystemError } from './errors.js';
import { float16ToFloat32 } from './float16.js';
import { type ShardVerification, verifyShards } from './shard-verify.js';
import { concatTargets } from './targets.js';
import type { Targets } from './types.js';

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
  const manifest = await readFeatureCacheManifest(directory);
  if (!manifest) throw new DatasetFileError(join(directory, FEATURE_CACHE_MANIFEST), 'not found: no feature cache in this directory');
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
