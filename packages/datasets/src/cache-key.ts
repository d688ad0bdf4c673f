import type { CacheSourceInfo, FeatureCacheKey, FeatureCacheManifest, FeatureDtype } from './cache-manifest.js';

/** Refuses a cache started for another key, or from another source or storage type. */
export function checkCacheMatches(
  directory: string,
  manifest: FeatureCacheManifest,
  wanted: { readonly key: FeatureCacheKey; readonly source: CacheSourceInfo; readonly dtype: FeatureDtype },
): void {
  refuseMismatch(directory, manifest, wanted.key);
  const started = {
    dtype: manifest.dtype,
    sourceCount: manifest.sourceCount,
    cropsPerImage: manifest.cropsPerImage,
    classNames: manifest.classNames,
  };
  const { source } = wanted;
  const now = { dtype: wanted.dtype, sourceCount: source.count, cropsPerImage: source.cropsPerImage, classNames: source.classNames };
  const difference = firstDifference(started, now);
  if (difference) {
    throw new Error(
      `cannot resume the feature cache at ${directory}: ${difference.path} was ${show(difference.stored)} when it was started, now ${show(difference.wanted)}`,
    );
  }
}

/** Refuses a cache made for another key, naming the first field that differs. */
export function refuseMismatch(directory: string, manifest: FeatureCacheManifest, key: FeatureCacheKey): void {
  const difference = firstDifference(manifest.key, key, 'key');
  if (difference) {
    throw new Error(
      `the feature cache at ${directory} was made for something else: ${difference.path} is ${show(difference.stored)} in the cache but ${show(difference.wanted)} was expected. Delete it or choose another directory.`,
    );
  }
}

interface Difference {
  readonly path: string;
  readonly stored: unknown;
  readonly wanted: unknown;
}

/**
 * The first place where two JSON values differ; undefined when equal. Values are compared as they
 * are stored (a JSON round trip drops undefined fields).
 */
function firstDifference(stored: unknown, wanted: unknown, path = ''): Difference | undefined {
  const walk = (a: unknown, b: unknown, at: string): Difference | undefined => {
    if (Array.isArray(a) && Array.isArray(b)) {
      if (a.length !== b.length) return { path: `${at}.length`, stored: a.length, wanted: b.length };
      for (let i = 0; i < a.length; i++) {
        const found = walk(a[i], b[i], `${at}[${i}]`);
        if (found) return found;
      }
      return undefined;
    }
    if (isRecord(a) && isRecord(b)) {
      for (const field of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
        const found = walk(a[field], b[field], at ? `${at}.${field}` : field);
        if (found) return found;
      }
      return undefined;
    }
    return a === b ? undefined : { path: at, stored: a, wanted: b };
  };
  return walk(jsonRoundTrip(stored), jsonRoundTrip(wanted), path);
}

function show(value: unknown): string {
  return value === undefined ? 'absent' : JSON.stringify(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonRoundTrip(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}
