export { checkCacheMatches } from './cache-key.js';
export {
  type CacheSourceInfo,
  type FeatureCacheKey,
  type FeatureCacheManifest,
  type FeatureCacheProgress,
  type FeatureDtype,
  progressOf,
  readFeatureCacheManifest,
  type ShardEntry,
  shardSpan,
} from './cache-manifest.js';
export * from './cache-reader.js';
export * from './cache-writer.js';
export * from './cifar.js';
export * from './dataset-format.js';
export * from './decode.js';
export * from './download.js';
export * from './errors.js';
export * from './extract.js';
export * from './file-dataset.js';
export { isDirectory, isFile, listEntries } from './files.js';
export * from './fill.js';
export * from './float16.js';
export * from './folder.js';
export * from './image-header.js';
export * from './imagenet.js';
export * from './pipeline.js';
export * from './plugin.js';
export * from './pool.js';
export * from './random.js';
export * from './shard-verify.js';
export * from './spec.js';
export * from './targets.js';
export * from './transform.js';
export * from './types.js';
export * from './voc.js';
