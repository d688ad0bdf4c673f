import { type Backend, type CompileOptions, compileBatchProgram, INPUT, OUTPUT, type SignedProgram } from '@gradfeat/core';
import { checkCacheMatches } from './cache-key.js';
import {
  type CacheSourceInfo,
  type FeatureCacheKey,
  type FeatureCacheManifest,
  type FeatureCacheProgress,
  progressOf,
  readFeatureCacheManifest,
  type ShardEntry,
} from './cache-manifest.js';
import { type FeatureCache, openFeatureCache } from './cache-reader.js';
import {
  type FeatureCachePlanOptions,
  recordShard,
  type ShardWriter,
  startFeatureCache,
  writeCacheShard,
  writeFeatureCache,
} from './cache-writer.js';
import type { BatchSource } from './pipeline.js';
import { selectTargets } from './targets.js';

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
 * A shard writer running `program` (INPUT → OUTPUT), compiled once, on each batch of `source`;
 * `close` frees the program, then calls `closeSource`.
 */
export async function programShardWriter(
  backend: Backend,
  program: SignedProgram,
  source: ShardWriter['source'],
  batchSize: number,
  options: CompileOptions & { readonly closeSource?: () => Promise<void> },
): Promise<OpenShardWriter> {
  const compiled = await compileBatchProgram(backend, program, options);
  return {
    source,
    extract: async (batch) => (await compiled.run({ [INPUT]: batch }, { only: [OUTPUT] }))[OUTPUT],
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

/** What `derivedCacheFill` computes from a cache's rows, and where it caches it. */
export interface DerivedCacheOptions {
  readonly backend: Backend;
  /** The cache whose rows the program reads, e.g. a split's cached trunk outputs. */
  readonly cut: FeatureCache;
  /** Where the derived cache lives (its own directory). */
  readonly cacheDir: string;
  /** Images per batch. Default 256. */
  readonly batchSize?: number;
  /** Approximate shard size. Default 64 MiB. */
  readonly shardBytes?: number;
}

/** The program a derived cache holds the outputs of, and what identifies them. */
export interface DerivedProgram {
  readonly key: FeatureCacheKey;
  /** INPUT (rows of the cache it reads) → OUTPUT, whose sample shape the cache's rows have. */
  readonly program: SignedProgram;
  /** Shown in errors and profiles. */
  readonly name: string;
}

/** The shape of one sample of a cached program's OUTPUT (the rows its cache holds), from its signature. */
export function outputSampleShape(program: SignedProgram, name: string): readonly number[] {
  const shape = program.outputs[OUTPUT];
  if (!shape) throw new Error(`program '${name}' has no output '${OUTPUT}' to cache (outputs: ${Object.keys(program.outputs).join(', ')})`);
  return shape.slice(1);
}

/**
 * A cache of a program of another cache's rows (e.g. a network's head on cached trunk outputs): read
 * in order, whole images at a time, run through `derived.program`.
 */
export function derivedCacheFill(options: DerivedCacheOptions, derived: DerivedProgram): CacheFill {
  const { manifest } = options.cut;
  const batchSize = options.batchSize ?? 256;
  return {
    directory: options.cacheDir,
    key: derived.key,
    sampleShape: outputSampleShape(derived.program, derived.name),
    batchSize,
    shardBytes: options.shardBytes,
    async sourceInfo() {
      const { classNames, labelKind, cropsPerImage } = manifest;
      return { count: manifest.counts.images, classNames, labelKind, cropsPerImage };
    },
    open: () => programShardWriter(options.backend, derived.program, cachedRows(options.cut), batchSize, { name: derived.name }),
  };
}

/** A cache's rows, in order and whole images at a time, as the batches the cache writer reads. */
function cachedRows(cache: FeatureCache): BatchSource {
  const { manifest } = cache;
  const crops = manifest.cropsPerImage;
  return {
    count: manifest.counts.images,
    classNames: manifest.classNames,
    labelKind: manifest.labelKind,
    cropsPerImage: crops,
    async *batches({ batchSize, start = 0, end = manifest.counts.images }) {
      const stop = Math.min(end, manifest.counts.images);
      for (let first = start; first < stop; first += batchSize) {
        const indices = Array.from({ length: Math.min(batchSize, stop - first) }, (_, i) => first + i);
        const rows = indices.flatMap((image) => Array.from({ length: crops }, (_, crop) => image * crops + crop));
        yield {
          indices,
          images: await cache.source.read(rows),
          targets: selectTargets(cache.targets, indices),
          skipped: [],
          nextStart: first + indices.length,
        };
      }
    },
  };
}
