import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FEATURE_CACHE_MANIFEST, type SampleSource, sizeOf } from '@gradfeat/core';
import { refuseMismatch } from './cache-key.js';
import {
  type FeatureCacheKey,
  type FeatureCacheManifest,
  readFeatureCacheManifest,
  requireLittleEndian,
  type ShardEntry,
  sha256,
} from './cache-manifest.js';
import { targetsFromJson } from './cache-targets.js';
import { DatasetFileError, fileSystemError } from './errors.js';
import { float16ToFloat32 } from './float16.js';
import { type ShardVerification, verifyShards } from './shard-verify.js';
import { concatTargets } from './targets.js';
import type { Targets } from './types.js';

/** A read loads a whole shard when it wants at least 1/WHOLE_SHARD_FRACTION of its rows. */
const WHOLE_SHARD_FRACTION = 8;

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
