import { createHash } from 'node:crypto';
import {
  type Backend,
  FEATURES,
  featuresProgram,
  graphFingerprint,
  type LinearisedModel,
  type PointData,
  type Program,
  pointRowParts,
  pointRowsProgram,
  sizeOf,
  splitRows,
} from '@gradfeat/core';
import type { FeatureCache, FeatureCacheKey, FeatureCacheProgress } from './cache.js';
import { type CacheFill, fillFeatureCache, programShardWriter, type ShardRunner } from './fill.js';
import type { BatchSource } from './pipeline.js';
import { selectTargets } from './targets.js';

/** What `extractPoint` computes the point from, and where it caches it. */
export interface ExtractPointOptions {
  readonly backend: Backend;
  readonly model: LinearisedModel;
  /** The split's cached cut values. */
  readonly cut: FeatureCache;
  /** Where the point's cache lives (its own directory). */
  readonly cacheDir: string;
  readonly batchSize?: number;
  /** Approximate shard size. Default 64 MiB. */
  readonly shardBytes?: number;
  /** Called after each batch with the images done so far. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
  /** Writes the shards elsewhere, e.g. as jobs on other machines; default: in this process. */
  readonly runner?: ShardRunner;
}

/** The key of a point cache: the cut values' key, and the head whose point it holds. */
export function pointCacheKey(model: LinearisedModel, cut: FeatureCache): FeatureCacheKey {
  const heads = [model.head, ...(model.gradientTermHead ? [model.gradientTermHead] : [])].map(graphFingerprint).join(' ');
  return {
    ...cut.manifest.key,
    modelHash: `${cut.manifest.key.modelHash} head ${heads}`,
    cut: `${model.cut} → point of ${model.features}`,
  };
}

/**
 * A point cache's folder name beside the cut values' cache: one per head (a randomised θ2 or ω, other
 * coordinates), so that runs sharing a cut cache keep their points side by side.
 */
export function pointCacheName(split: string, model: LinearisedModel, cut: FeatureCache): string {
  const { modelHash, cut: cutName } = pointCacheKey(model, cut);
  return `${split}.point-${createHash('sha256').update(`${modelHash}\n${cutName}`).digest('hex').slice(0, 12)}`;
}

/** A split's cached point: per-sample sources for the trainer, and the cache behind them. */
export interface ExtractedPoint {
  readonly data: PointData;
  readonly cache: FeatureCache;
}

/**
 * The linearised models' point (features f(x) and the residuals their tangent and backward passes
 * read) for every cached cut value, computed once into a float32 cache of its own beside the cut
 * values (reused when complete, resumed when interrupted), so that their steps skip the frozen head.
 */
export async function extractPoint(options: ExtractPointOptions): Promise<ExtractedPoint> {
  const cache = await fillFeatureCache(pointCacheFill(options), options);
  return { data: pointOfCache(options.model, cache), cache };
}

/** A point cache's rows split into the features and each residual. */
export function pointOfCache(model: LinearisedModel, cache: FeatureCache): PointData {
  const { [FEATURES]: features, ...residuals } = splitRows(cache.source, pointRowParts(model));
  return { features, residuals };
}

/** The point of every cached cut value as a cache to fill. */
export function pointCacheFill(options: Omit<ExtractPointOptions, 'onProgress' | 'runner'>): CacheFill {
  const parts = pointRowParts(options.model);
  return headCacheFill(options, {
    key: pointCacheKey(options.model, options.cut),
    program: pointRowsProgram(options.model),
    sampleShape: [parts.reduce((total, [, shape]) => total + sizeOf(shape), 0)],
    name: `point of ${options.model.features}`,
  });
}

/** The key of a features cache: the cut values' key, and the frozen head that computes f(x). */
export function featuresCacheKey(model: LinearisedModel, cut: FeatureCache): FeatureCacheKey {
  return {
    ...cut.manifest.key,
    modelHash: `${cut.manifest.key.modelHash} head ${graphFingerprint(model.head)}`,
    cut: `${model.cut} → ${model.features}`,
  };
}

/** The frozen features f(x) of every cached cut value (what the linear probe trains on) as a cache to fill. */
export function featuresCacheFill(options: Omit<ExtractPointOptions, 'onProgress' | 'runner'>): CacheFill {
  return headCacheFill(options, {
    key: featuresCacheKey(options.model, options.cut),
    program: featuresProgram(options.model),
    sampleShape: [options.model.featureCount],
    name: `features ${options.model.features}`,
  });
}

/** A cache of a program of the cut values: read in order from the cut cache, run through `program`. */
function headCacheFill(
  options: Omit<ExtractPointOptions, 'onProgress' | 'runner'>,
  what: { readonly key: FeatureCacheKey; readonly program: Program; readonly sampleShape: readonly number[]; readonly name: string },
): CacheFill {
  const { manifest } = options.cut;
  const batchSize = options.batchSize ?? 256;
  return {
    directory: options.cacheDir,
    key: what.key,
    sampleShape: what.sampleShape,
    batchSize,
    shardBytes: options.shardBytes,
    async sourceInfo() {
      const { classNames, labelKind, cropsPerImage } = manifest;
      return { count: manifest.counts.images, classNames, labelKind, cropsPerImage };
    },
    open: () => programShardWriter(options.backend, what.program, cachedRows(options.cut), batchSize, { name: what.name }),
  };
}

/** A cache's rows, in order and whole images at a time, as the batches the cache writer reads. */
function cachedRows(cache: FeatureCache): BatchSource & { readonly sampleShape: readonly number[] } {
  const { manifest } = cache;
  const crops = manifest.cropsPerImage;
  return {
    count: manifest.counts.images,
    classNames: manifest.classNames,
    labelKind: manifest.labelKind,
    cropsPerImage: crops,
    sampleShape: cache.source.sampleShape,
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
