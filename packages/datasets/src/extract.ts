import type { Backend, HostTensor, SampleSource, SignedProgram } from '@gradfeat/core';
import type { FeatureCacheKey, FeatureCacheProgress, FeatureDtype } from './cache-manifest.js';
import type { FeatureCache } from './cache-reader.js';
import { type CacheFill, fillFeatureCache, outputSampleShape, programShardWriter, type ShardRunner } from './fill.js';
import { ImagePipeline } from './pipeline.js';
import { openDataset } from './spec.js';
import { emptyClassWarnings, perClassCounts, targetsTensor } from './targets.js';
import { cropsPerImage, type TransformSpec } from './transform.js';
import type { ImageDataset, LabelKind } from './types.js';

/** What `extractSplit` runs, on which data, and where it caches. */
export interface ExtractSplitOptions {
  readonly backend: Backend;
  /** What runs on the images, e.g. a network's frozen trunk θ1. */
  readonly trunk: TrunkProgram;
  /** 'KIND:PATH', e.g. 'folder:/data/cifar-10-jpg'. */
  readonly dataset: string;
  readonly split: string;
  readonly transform: TransformSpec;
  /** Where this split's cache lives (one directory per split). */
  readonly cacheDir: string;
  readonly batchSize?: number;
  readonly dtype?: FeatureDtype;
  /** Approximate shard size. Default 64 MiB. */
  readonly shardBytes?: number;
  readonly workers?: number;
  readonly skipBadImages?: boolean;
  /** Called as the cache is written. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
  /** Writes the shards elsewhere, e.g. as jobs on other machines; default: in this process. */
  readonly runner?: ShardRunner;
}

/**
 * A program of the images (INPUT → OUTPUT, whose sample shape the cache's rows have) whose outputs a
 * split's cache holds, and what identifies it in the cache's key.
 */
export interface TrunkProgram {
  readonly program: SignedProgram;
  /** Identifies the program's weights, e.g. its graph's fingerprint. */
  readonly modelHash: string;
  /** The value it computes, e.g. the node where the network is cut. */
  readonly cut: string;
}

/** A split's cached trunk outputs with its targets, ready for core's methods (a LabelledSplit). */
export interface ExtractedSplit {
  /** The trunk's outputs: `crops` consecutive rows per image. */
  readonly cut: SampleSource;
  readonly crops: number;
  /** Shape [N, K]: one-hot or multi-hot. */
  readonly targets: HostTensor;
  /** Multi-label: 0 where a target is difficult (ignored). */
  readonly mask?: HostTensor;
  readonly classNames: readonly string[];
  readonly labelKind: LabelKind;
  readonly cache: FeatureCache;
  /** Images per class (multi-label: images where the class is positive). */
  readonly perClassCounts: readonly number[];
  /** One per class without images. */
  readonly warnings: readonly string[];
}

/** What identifies a split's cached trunk outputs: the trunk, the cut, the preprocessing and the data. */
export function featureCacheKey(
  trunk: Pick<TrunkProgram, 'modelHash' | 'cut'>,
  dataset: string,
  split: string,
  transform: TransformSpec,
): FeatureCacheKey {
  return { modelHash: trunk.modelHash, cut: trunk.cut, preprocessing: transform, dataset: `${dataset} ${split}` };
}

/** The trunk over a dataset split as a cache to fill: images decoded on worker threads, the trunk compiled once. */
export function trunkCacheFill(options: Omit<ExtractSplitOptions, 'onProgress' | 'runner'>): CacheFill {
  let dataset: Promise<ImageDataset> | undefined;
  const openSplit = () => {
    dataset ??= openDataset(options.dataset, options.split);
    return dataset;
  };
  const batchSize = options.batchSize ?? 128;
  const name = `trunk to ${options.trunk.cut}`;
  return {
    directory: options.cacheDir,
    key: featureCacheKey(options.trunk, options.dataset, options.split, options.transform),
    sampleShape: outputSampleShape(options.trunk.program, name),
    batchSize,
    dtype: options.dtype ?? 'float32',
    shardBytes: options.shardBytes,
    async sourceInfo() {
      const { length, classNames, labelKind } = await openSplit();
      return { count: length, classNames, labelKind, cropsPerImage: cropsPerImage(options.transform) };
    },
    async open() {
      const pipeline = await ImagePipeline.create(await openSplit(), {
        transform: options.transform,
        workers: options.workers,
        skipBadImages: options.skipBadImages,
      });
      return programShardWriter(options.backend, options.trunk.program, pipeline, batchSize, {
        name,
        sharesCores: true,
        closeSource: () => pipeline.close(),
      });
    },
  };
}

/**
 * Runs the trunk once over a dataset split into a feature cache (resuming an interrupted
 * extraction, reusing a complete one with the same key), and opens it as a LabelledSplit: one-hot or
 * multi-hot targets, with VOC's difficult entries masked out.
 */
export async function extractSplit(options: ExtractSplitOptions): Promise<ExtractedSplit> {
  const cache = await fillFeatureCache(trunkCacheFill(options), options);
  if (cache.manifest.counts.skipped > 0 && !options.skipBadImages) {
    throw new Error(
      `${options.cacheDir}: this cache left out ${cache.manifest.counts.skipped} unreadable images (it was extracted skipping bad images); skip them again (--skip-bad-images) to use it, or delete it to extract again`,
    );
  }
  return cachedSplit(cache);
}

/** A complete cache as a LabelledSplit, with the targets (and VOC's difficult mask) it stores. */
export function cachedSplit(cache: FeatureCache): ExtractedSplit {
  const targets = targetsTensor(cache.targets);
  const mask =
    cache.targets.kind === 'multi-label'
      ? { shape: targets.shape, data: Float32Array.from(cache.targets.difficult, (difficult) => 1 - difficult) }
      : undefined;
  const counts = perClassCounts(cache.targets);
  return {
    cut: cache.source,
    crops: cache.manifest.cropsPerImage,
    targets,
    mask,
    classNames: cache.manifest.classNames,
    labelKind: cache.manifest.labelKind,
    cache,
    perClassCounts: counts,
    warnings: emptyClassWarnings(cache.manifest.classNames, counts, cache.manifest.key.dataset),
  };
}
