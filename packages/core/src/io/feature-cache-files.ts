import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicTempTarget } from './atomic.js';
import { LOCK_FILE } from './directory-lock.js';

/**
 * The feature cache's own files, as @gradfeat/datasets writes them, known here so that a run
 * directory recognises the cache inside it and a cache recognises its directory. Anything else in
 * such a directory is the user's: gradfeat neither writes into it nor deletes from it.
 */
export const FEATURE_CACHE_MANIFEST = 'manifest.json';
/** The `format` a feature cache's manifest declares, which marks its directory as gradfeat's. */
export const FEATURE_CACHE_FORMAT = 'gradfeat-feature-cache';

/**
 * The entries of `directory` that are not a feature cache's: none when it is missing or empty, holds
 * a feature-cache manifest, or holds nothing but interrupted atomic writes (an extraction killed while
 * writing its first manifest) and a lock; otherwise every entry that is not gradfeat's, sorted.
 */
export async function foreignEntries(directory: string): Promise<string[]> {
  const entries: string[] = await readdir(directory).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  if (entries.includes(FEATURE_CACHE_MANIFEST) && (await declaresFeatureCache(join(directory, FEATURE_CACHE_MANIFEST)))) return [];
  return entries.filter((name) => name !== LOCK_FILE && atomicTempTarget(name) === undefined).sort();
}

/** Whether every entry of `directory` is a folder that `foreignEntries` finds no foreign entry in (one cache per split). */
export async function isFeatureCacheRoot(directory: string): Promise<boolean> {
  if (!(await stat(directory)).isDirectory()) return false;
  for (const entry of await readdir(directory)) {
    const path = join(directory, entry);
    if (!(await stat(path)).isDirectory() || (await foreignEntries(path)).length > 0) return false;
  }
  return true;
}

async function declaresFeatureCache(manifest: string): Promise<boolean> {
  try {
    return JSON.parse(await readFile(manifest, 'utf8'))?.format === FEATURE_CACHE_FORMAT;
  } catch {
    return false;
  }
}
