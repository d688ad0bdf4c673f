import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetFileError, fileSystemError } from './errors.js';

/** What verifying a cache's shards read and how long it took. */
export interface ShardVerification {
  readonly shards: number;
  readonly bytes: number;
  readonly seconds: number;
}

/** The part of a shard's manifest entry that verification checks. */
export interface ShardChecksum {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * Checks every shard's size and SHA-256 against the manifest, streaming each file through the hash
 * (memory stays flat whatever the shard size), so that a cache damaged in place (zeroed rows, a
 * flipped byte) is caught before training reads any row of it. The error names the shard and how to
 * rebuild the cache.
 */
export async function verifyShards(directory: string, shards: readonly ShardChecksum[]): Promise<ShardVerification> {
  const started = performance.now();
  let bytes = 0;
  for (const shard of shards) {
    const path = join(directory, shard.file);
    const { size } = await stat(path).catch((error) => {
      throw fileSystemError(path, error);
    });
    if (size !== shard.bytes)
      throw new DatasetFileError(path, `has ${size} bytes, the manifest says ${shard.bytes}: truncated or replaced`);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    if (hash.digest('hex') !== shard.sha256) {
      throw new DatasetFileError(
        path,
        `checksum does not match the manifest: the shard is corrupt; delete ${directory} and run the extraction again to rebuild the cache`,
      );
    }
    bytes += size;
  }
  return { shards: shards.length, bytes, seconds: (performance.now() - started) / 1000 };
}
