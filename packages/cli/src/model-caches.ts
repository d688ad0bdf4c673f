import { createHash } from 'node:crypto';
import {
  FEATURES,
  featuresProgram,
  forwardProgram,
  graphFingerprint,
  type LinearisedModel,
  type PointData,
  pointRowParts,
  pointRowsProgram,
  STORAGE_ORDER,
  splitRows,
} from '@gradfeat/core';
import {
  type CacheFill,
  type DerivedCacheOptions,
  derivedCacheFill,
  type FeatureCache,
  type FeatureCacheKey,
  type FillOptions,
  fillFeatureCache,
  type TrunkProgram,
} from '@gradfeat/datasets';

/** The linearised model's frozen trunk θ1 as the program a split's cache holds the outputs of. */
export function trunkProgram(model: LinearisedModel): TrunkProgram {
  return { program: forwardProgram(model.trunk), modelHash: graphFingerprint(model.trunk), cut: model.cut };
}

/** What a point or features cache is computed from, and where it lives. */
export interface HeadCacheOptions extends DerivedCacheOptions {
  readonly model: LinearisedModel;
}

/**
 * The key of a point cache: the cut values' key, the head whose point it holds, and the order its
 * residuals are stored in (caches of an earlier, row-major order are not read as this one).
 */
export function pointCacheKey(model: LinearisedModel, cut: FeatureCache): FeatureCacheKey {
  const heads = [model.head, ...(model.gradientTermHead ? [model.gradientTermHead] : [])].map(graphFingerprint).join(' ');
  return {
    ...cut.manifest.key,
    modelHash: `${cut.manifest.key.modelHash} head ${heads}`,
    cut: `${model.cut} → point of ${model.features}, residuals ${STORAGE_ORDER}`,
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
export async function extractPoint(options: HeadCacheOptions, fill: FillOptions = {}): Promise<ExtractedPoint> {
  const cache = await fillFeatureCache(pointCacheFill(options), fill);
  return { data: pointOfCache(options.model, cache), cache };
}

/** A point cache's rows split into the features and each residual. */
export function pointOfCache(model: LinearisedModel, cache: FeatureCache): PointData {
  const { [FEATURES]: features, ...residuals } = splitRows(cache.source, pointRowParts(model));
  return { features, residuals };
}

/** The point of every cached cut value as a cache to fill. */
export function pointCacheFill(options: HeadCacheOptions): CacheFill {
  return derivedCacheFill(options, {
    key: pointCacheKey(options.model, options.cut),
    program: pointRowsProgram(options.model),
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
export function featuresCacheFill(options: HeadCacheOptions): CacheFill {
  return derivedCacheFill(options, {
    key: featuresCacheKey(options.model, options.cut),
    program: featuresProgram(options.model),
    name: `features ${options.model.features}`,
  });
}
