import { type Backend, type CompileOptions, compileBatchProgram, INPUT, OUTPUT, type Program } from '@gradfeat/core';
import {
  type CacheSourceInfo,
  checkCacheMatches,
  type FeatureCache,
  type FeatureCacheManifest,
  type FeatureCachePlanOptions,
  type FeatureCacheProgress,
  openFeatureCache,
  progressOf,
  readFeatureCacheManifest,
  recordShard,
  type ShardEntry,
  type ShardWriter,
  startFeatureCache,
  writeCacheShard,
  writeFeatureCache,
} from './cache.js';

/**
 * One feature cache to fill, described so that any machine can write any of its shards: the plan's
 * settings, and how to open the source and the program that write them.
 */
export interface CacheFill extends Omit<FeatureCachePlanOptions, 'source'> {
  readonly directory: string;
  /** The source's size and classes, without decoding anything. */
  sourceInfo(): Promise<CacheSourceInfo>;
  /** Opens the source and compiles the program; `close` frees them. */
  open(): Promise<OpenShardWriter>;
}

export interface OpenShardWriter extends ShardWriter {
  /** Closes the source and frees the compiled program. */
  close(): Promise<void>;
}

/**
 * A shard writer running `program` (INPUT → OUTPUT), compiled once for samples of `sampleShape`, on
 * each batch of `source`; `close` frees the program, then calls `closeSource`.
 */
export async function programShardWriter(
  backend: Backend,
  program: Program,
  source: ShardWriter['source'] & { readonly sampleShape: readonly number[] },
  batchSize: number,
  options: CompileOptions & { readonly closeSource?: () => Promise<void> },
): Promise<OpenShardWriter> {
  const compiled = await compileBatchProgram(backend, program, { batched: { [INPUT]: source.sampleShape } }, options);
  return {
    source,
    extract: async (batch) => (await compiled.run({ [INPUT]: batch }))[OUTPUT],
    batchSize,
    close: async () => {
      compiled.dispose();
      await options.closeSource?.();
    },
  };
}

/**
 * Writes the missing shards of a started cache and hands each entry to `record` (which adds it to the
 * manifest): in this process, or as jobs on other machines. Shards may be recorded in any order.
 */
export type ShardRunner = (fill: CacheFill, manifest: FeatureCacheManifest, record: (entry: ShardEntry) => Promise<void>) => Promise<void>;

/** Where a cache's shards are written, and progress. */
export interface FillOptions {
  /** Writes the shards elsewhere (jobs on other machines); default: here, one after another (writeFeatureCache). */
  readonly runner?: ShardRunner;
  /** Called as shards are recorded. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
}

/**
 * Fills a cache (or reuses it when complete, or resumes it when interrupted) and opens it. One
 * implementation whatever writes the shards: the plan, the shard bytes and the manifest are the same.
 */
export async function fillFeatureCache(fill: CacheFill, options: FillOptions = {}): Promise<FeatureCache> {
  const existing = await openFeatureCache(fill.directory, fill.key).catch(() => undefined);
  const dtype = fill.dtype ?? 'float32';
  if (existing && existing.manifest.dtype !== dtype) {
    throw new Error(
      `${fill.directory}: holds a ${existing.manifest.dtype} cache of these features; remove it or ask for ${existing.manifest.dtype} to reuse it`,
    );
  }
  if (existing) return existing;
  if (!options.runner) {
    const writer = await fill.open();
    try {
      await writeFeatureCache(fill.directory, { ...fill, ...writer, onProgress: options.onProgress });
    } finally {
      await writer.close();
    }
    return openFeatureCache(fill.directory, fill.key);
  }
  let manifest = await startFeatureCache(fill.directory, { ...fill, source: await fill.sourceInfo() });
  if (!manifest.complete) {
    // The coordinator alone writes the manifest, one recorded shard at a time.
    let recorded = Promise.resolve();
    const record = (entry: ShardEntry) => {
      recorded = recorded.then(async () => {
        manifest = await recordShard(fill.directory, manifest, entry);
        options.onProgress?.(progressOf(manifest));
      });
      return recorded;
    };
    await options.runner(fill, manifest, record);
    await recorded;
  }
  return openFeatureCache(fill.directory, fill.key);
}

/**
 * Writes one shard of a cache another process planned (a job on a worker): the manifest on the shared
 * storage must be for exactly this fill's key, so a worker with another model or data refuses.
 */
export async function writeShardOf(fill: CacheFill, writer: ShardWriter, index: number): Promise<ShardEntry> {
  const manifest = await readFeatureCacheManifest(fill.directory);
  if (!manifest) throw new Error(`${fill.directory}: no feature cache manifest; the coordinator plans it before sending jobs`);
  try {
    checkCacheMatches(fill.directory, manifest, { key: fill.key, source: await fill.sourceInfo(), dtype: fill.dtype ?? 'float32' });
  } catch (error) {
    throw new Error(`this worker cannot write shard ${index}: ${(error as Error).message}`);
  }
  return writeCacheShard(fill.directory, manifest, index, writer);
}
