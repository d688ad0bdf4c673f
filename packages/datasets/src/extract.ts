import { type Backend, forwardProgram, graphFingerprint, type LabelledSplit, type LinearisedModel } from '@gradfeat/core';
import type { FeatureCache, FeatureCacheKey, FeatureCacheProgress, FeatureDtype } from './cache.js';
import { type CacheFill, fillFeatureCache, programShardWriter, type ShardRunner } from './fill.js';
import { ImagePipeline } from './pipeline.js';
import { openDataset } from './spec.js';
import { emptyClassWarnings, perClassCounts, targetsTensor } from './targets.js';
import { cropsPerImage, type TransformSpec } from './transform.js';
import type { ImageDataset, LabelKind } from './types.js';

/** What `extractSplit` runs, on which data, and where it caches. */
export interface ExtractSplitOptions {
  readonly backend: Backend;
  readonly model: LinearisedModel;
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

/** A split's cached trunk outputs with its targets, ready for core's methods. */
export interface ExtractedSplit extends LabelledSplit {
  readonly classNames: readonly string[];
  readonly labelKind: LabelKind;
  readonly cache: FeatureCache;
  /** Images per class (multi-label: images where the class is positive). */
  readonly perClassCounts: readonly number[];
  /** One per class without images. */
  readonly warnings: readonly string[];
}

/** What identifies a split's cached trunk outputs: the trunk, the cut, the preprocessing and the data. */
export function featureCacheKey(model: LinearisedModel, dataset: string, split: string, transform: TransformSpec): FeatureCacheKey {
  return { modelHash: graphFingerprint(model.trunk), cut: model.cut, preprocessing: transform, dataset: `${dataset} ${split}` };
}

/** The trunk θ1 over a dataset split as a cache to fill: images decoded on worker threads, the trunk compiled once. */
export function trunkCacheFill(options: Omit<ExtractSplitOptions, 'onProgress' | 'runner'>): CacheFill {
  let dataset: Promise<ImageDataset> | undefined;
  const openSplit = () => {
    dataset ??= openDataset(options.dataset, options.split);
    return dataset;
  };
  const batchSize = options.batchSize ?? 128;
  return {
    directory: options.cacheDir,
    key: featureCacheKey(options.model, options.dataset, options.split, options.transform),
    sampleShape: options.model.cutShape,
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
      return programShardWriter(options.backend, forwardProgram(options.model.trunk), pipeline, batchSize, {
        name: `trunk to ${options.model.cut}`,
        sharesCores: true,
        closeSource: () => pipeline.close(),
      });
    },
  };
}

/**
 * Runs the frozen trunk θ1 once over a dataset split into a feature cache (resuming an interrupted
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
