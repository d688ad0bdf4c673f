import {
  type Backend,
  forwardProgram,
  graphFingerprint,
  type HostTensor,
  INPUT,
  inputShapesOf,
  type LabelledSplit,
  type LinearisedModel,
  OUTPUT,
} from '@gradfeat/core';
import {
  type FeatureCache,
  type FeatureCacheKey,
  type FeatureCacheProgress,
  type FeatureDtype,
  openFeatureCache,
  writeFeatureCache,
} from './cache.js';
import { ImagePipeline } from './pipeline.js';
import { openDataset } from './spec.js';
import { emptyClassWarnings, perClassCounts, targetsTensor } from './targets.js';
import type { TransformSpec } from './transform.js';
import type { LabelKind } from './types.js';

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
  readonly workers?: number;
  readonly skipBadImages?: boolean;
  /** Called as the cache is written. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
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

/**
 * Runs the frozen trunk θ1 once over a dataset split into a feature cache (resuming an interrupted
 * extraction, reusing a complete one with the same key), and opens it as a LabelledSplit: one-hot or
 * multi-hot targets, with VOC's difficult entries masked out.
 */
export async function extractSplit(options: ExtractSplitOptions): Promise<ExtractedSplit> {
  const key = featureCacheKey(options.model, options.dataset, options.split, options.transform);
  // A missing, incomplete or mismatched cache: writeFeatureCache creates, resumes or refuses it.
  let cache = await openFeatureCache(options.cacheDir, key).catch(() => undefined);
  const dtype = options.dtype ?? 'float32';
  if (cache && cache.manifest.counts.skipped > 0 && !options.skipBadImages) {
    throw new Error(
      `${options.cacheDir}: this cache left out ${cache.manifest.counts.skipped} unreadable images (it was extracted skipping bad images); skip them again (--skip-bad-images) to use it, or delete it to extract again`,
    );
  }
  if (cache && cache.manifest.dtype !== dtype) {
    throw new Error(
      `${options.cacheDir}: holds a ${cache.manifest.dtype} cache of these features; remove it or ask for ${cache.manifest.dtype} to reuse it`,
    );
  }
  if (!cache) {
    const dataset = await openDataset(options.dataset, options.split);
    const pipeline = await ImagePipeline.create(dataset, {
      transform: options.transform,
      workers: options.workers,
      skipBadImages: options.skipBadImages,
    });
    const batchSize = options.batchSize ?? 128;
    const example = { [INPUT]: { shape: [1, ...pipeline.sampleShape], data: new Float32Array(0) } };
    const trunk = await options.backend.compile(forwardProgram(options.model.trunk), inputShapesOf(example, [INPUT]), {
      name: `trunk to ${options.model.cut}`,
      sharesCores: true,
    });
    try {
      await writeFeatureCache(options.cacheDir, {
        key,
        source: pipeline,
        extract: async (batch: HostTensor) => (await trunk.run({ [INPUT]: batch }))[OUTPUT],
        batchSize,
        dtype,
        onProgress: options.onProgress,
      });
    } finally {
      trunk.dispose();
      await pipeline.close();
    }
    cache = await openFeatureCache(options.cacheDir, key);
  }
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
    warnings: emptyClassWarnings(cache.manifest.classNames, counts, `${options.dataset} ${options.split}`),
  };
}
