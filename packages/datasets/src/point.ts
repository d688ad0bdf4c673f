import { createHash } from 'node:crypto';
import {
  type Backend,
  FEATURES,
  graphFingerprint,
  type HostTensor,
  INPUT,
  inputShapesOf,
  type LinearisedModel,
  OUTPUT,
  type PointData,
  pointRowParts,
  pointRowsProgram,
  splitRows,
} from '@gradfeat/core';
import { type FeatureCache, type FeatureCacheKey, type FeatureCacheProgress, openFeatureCache, writeFeatureCache } from './cache.js';
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
  /** Called after each batch with the images done so far. */
  readonly onProgress?: (progress: FeatureCacheProgress) => void;
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
  const key = pointCacheKey(options.model, options.cut);
  let cache = await openFeatureCache(options.cacheDir, key).catch(() => undefined);
  if (!cache) {
    const example = { [INPUT]: { shape: [1, ...options.cut.source.sampleShape], data: new Float32Array(0) } };
    const program = await options.backend.compile(pointRowsProgram(options.model), inputShapesOf(example, [INPUT]), {
      name: `point of ${options.model.features}`,
    });
    try {
      await writeFeatureCache(options.cacheDir, {
        key,
        source: cachedRows(options.cut),
        extract: async (batch: HostTensor) => (await program.run({ [INPUT]: batch }))[OUTPUT],
        batchSize: options.batchSize ?? 256,
        onProgress: options.onProgress,
      });
    } finally {
      program.dispose();
    }
    cache = await openFeatureCache(options.cacheDir, key);
  }
  const { [FEATURES]: features, ...residuals } = splitRows(cache.source, pointRowParts(options.model));
  return { data: { features, residuals }, cache };
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
    async *batches({ batchSize, start = 0 }) {
      for (let first = start; first < manifest.counts.images; first += batchSize) {
        const indices = Array.from({ length: Math.min(batchSize, manifest.counts.images - first) }, (_, i) => first + i);
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
