import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFeatureCache, writeFeatureCache } from '../src/cache.js';
import { CACHE_KEY, smallCacheOptions as options, temporaryDirectory } from './helpers.js';

describe('the feature cache writes only into directories that are its own', () => {
  let root: string;
  let remove: () => Promise<void>;
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
  });
  afterAll(() => remove());

  it("refuses a non-empty directory without a gradfeat manifest and leaves the user's files as they were", async () => {
    const directory = join(root, 'photos');
    await mkdir(directory);
    await writeFile(join(directory, 'draft.tmp'), 'unsaved work');
    await writeFile(join(directory, 'holiday.jpg'), 'pixels');
    await expect(writeFeatureCache(directory, options())).rejects.toThrow(
      `${directory}: holds files that are not a gradfeat feature cache (draft.tmp, holiday.jpg); choose an empty directory for the cache`,
    );
    expect((await readdir(directory)).sort()).toEqual(['draft.tmp', 'holiday.jpg']);
    expect(await readFile(join(directory, 'draft.tmp'), 'utf8')).toBe('unsaved work');
  });

  it('sweeps only its own interrupted atomic writes when resuming, never other *.tmp files', async () => {
    const directory = join(root, 'resumed');
    const killAfterOneShard = options({
      onProgress: ({ shards }) => {
        if (shards === 1) throw new Error('killed');
      },
    });
    await expect(writeFeatureCache(directory, killAfterOneShard)).rejects.toThrow('killed');
    await writeFile(join(directory, '.shard-00001.bin.0123456789ab.tmp'), 'half a shard');
    await writeFile(join(directory, 'notes.tmp'), "the user's notes");
    await writeFeatureCache(directory, options());
    expect((await readdir(directory)).sort()).toEqual([
      'manifest.json',
      'notes.tmp',
      'shard-00000.bin',
      'shard-00001.bin',
      'shard-00002.bin',
    ]);
    expect((await openFeatureCache(directory, CACHE_KEY)).manifest.counts.images).toBe(30);
  });

  it('takes a directory holding only its own temporary files (killed before the first manifest) as its own', async () => {
    const directory = join(root, 'killed-early');
    await mkdir(directory);
    await writeFile(join(directory, '.manifest.json.0123456789ab.tmp'), '{"format": "gradfeat-fea');
    await writeFeatureCache(directory, options());
    expect((await readdir(directory)).sort()).toEqual(['manifest.json', 'shard-00000.bin', 'shard-00001.bin', 'shard-00002.bin']);
  });

  it('writes its manifest before the first shard, so that a killed first extraction is still recognised', async () => {
    const directory = join(root, 'first-shard');
    // Progress comes only after a shard is recorded, so the kill is in the first batch's extraction.
    const killAtFirstBatch = options({
      extract: () => Promise.reject(new Error('killed')),
    });
    await expect(writeFeatureCache(directory, killAtFirstBatch)).rejects.toThrow('killed');
    const manifest = JSON.parse(await readFile(join(directory, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ format: 'gradfeat-feature-cache', complete: false, shards: [] });
    await writeFeatureCache(directory, options());
    expect((await openFeatureCache(directory, CACHE_KEY)).manifest.counts.images).toBe(30);
  });
});
