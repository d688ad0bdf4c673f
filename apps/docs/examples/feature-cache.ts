import type { HostTensor } from '@gradfeat/core';
import {
  type FeatureCache,
  type FeatureCacheKey,
  ImagePipeline,
  openDataset,
  openFeatureCache,
  type TransformSpec,
  writeFeatureCache,
} from '@gradfeat/datasets';

export interface TrunkCacheOptions {
  /** Where the shards and manifest.json go. */
  readonly directory: string;
  /** KIND:PATH, e.g. 'cifar10:/data/cifar-10-batches-bin'. */
  readonly dataset: string;
  readonly split: string;
  readonly transform: TransformSpec;
  /** What identifies the trunk: a hash of the model file and the cut it ends at. */
  readonly modelHash: string;
  readonly cut: string;
  /** Runs the frozen trunk θ1 on a batch of preprocessed images. */
  readonly extract: (images: HostTensor) => Promise<HostTensor>;
  /** The shape of one output row, e.g. the trunk's output shape without the batch dimension. */
  readonly sampleShape: readonly number[];
  /** Decoding threads; 0 decodes on the calling thread. Default: one per core. */
  readonly workers?: number;
}

/**
 * The trunk's outputs for every image of a split, computed once. A second call with the same options
 * opens the cache without running the trunk; an interrupted one resumes with the shards still missing.
 */
export async function cachedTrunkOutputs(options: TrunkCacheOptions): Promise<FeatureCache> {
  const { directory, dataset, split, transform } = options;
  const key: FeatureCacheKey = { modelHash: options.modelHash, cut: options.cut, preprocessing: transform, dataset: `${dataset} ${split}` };
  const pipeline = await ImagePipeline.create(await openDataset(dataset, split), { transform, workers: options.workers });
  try {
    await writeFeatureCache(directory, {
      key,
      source: pipeline,
      extract: options.extract,
      sampleShape: options.sampleShape,
      batchSize: 256,
    });
  } finally {
    await pipeline.close();
  }
  return openFeatureCache(directory, key);
}
