import { createHash } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type HostTensor, relativeError } from '@gradfeat/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { openFeatureCache } from '../src/cache-reader.js';
import { recordShard, startFeatureCache, writeCacheShard, writeFeatureCache } from '../src/cache-writer.js';
import { openCifar } from '../src/cifar.js';
import { float16ToFloat32, float32ToFloat16 } from '../src/float16.js';
import { type BatchSource, ImagePipeline } from '../src/pipeline.js';
import { verifyShards } from '../src/shard-verify.js';
import { selectTargets } from '../src/targets.js';
import type { Targets } from '../src/types.js';
import { CACHE_KEY as KEY, labels, memorySource, smallCacheOptions as options, temporaryDirectory, trunk } from './helpers.js';

describe('feature cache', () => {
  let root: string;
  let remove: () => Promise<void>;
  let run = 0;
  let directory: string;
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
  });
  afterAll(() => remove());
  afterEach(() => {
    run++;
  });
  const fresh = () => {
    directory = join(root, `cache-${run}`);
    return directory;
  };
  async function expectedRows(source: BatchSource): Promise<{ indices: number[]; rows: Float32Array }> {
    const indices: number[] = [];
    const parts: Float32Array[] = [];
    for await (const batch of source.batches({ batchSize: 1000 })) {
      indices.push(...batch.indices);
      parts.push((await trunk(batch.images)).data);
    }
    return { indices, rows: Float32Array.from(parts.flatMap((part) => [...part])) };
  }

  it('round-trips float32 features and labels exactly through several shards, with checksums in the manifest', async () => {
    const manifest = await writeFeatureCache(fresh(), options());
    expect(manifest).toMatchObject({
      complete: true,
      dtype: 'float32',
      sampleShape: [2, 3],
      rowsPerShard: 10,
      counts: { images: 30, rows: 30, skipped: 0 },
    });
    // Shards close at the first batch boundary at or past 10 rows: 12, 12, 6.
    expect(manifest.shards.map((shard) => [shard.rows, shard.sourceStart, shard.sourceEnd])).toEqual([
      [12, 0, 12],
      [12, 12, 24],
      [6, 24, 30],
    ]);
    for (const shard of manifest.shards) {
      const bytes = await readFile(join(directory, shard.file));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(shard.sha256);
      expect(bytes.length).toBe(shard.rows * 6 * 4);
    }
    const cache = await openFeatureCache(directory, KEY);
    expect([cache.source.count, ...cache.source.sampleShape]).toEqual([30, 2, 3]);
    const { rows } = await expectedRows(memorySource(30, labels(30)));
    const order = [29, 0, 13, 12, 11, 5, 24, 23];
    const read = await cache.source.read(order);
    expect(read.shape).toEqual([8, 2, 3]);
    expect(read.data).toEqual(Float32Array.from(order.flatMap((i) => [...rows.subarray(i * 6, i * 6 + 6)])));
    expect(cache.targets).toEqual(labels(30));
    await expect(cache.source.read([30])).rejects.toThrow('feature row 30 is outside 0..29');
    // Single rows are read from the files directly (the batch above loaded whole shards).
    const rowByRow = await openFeatureCache(directory, KEY);
    for (const i of [0, 11, 12, 29]) expect((await rowByRow.source.read([i])).data).toEqual(rows.subarray(i * 6, i * 6 + 6));
  });

  it('stores float16 at half the size, equal to rounding each value to the nearest half', async () => {
    const manifest = await writeFeatureCache(fresh(), options({ dtype: 'float16' }));
    expect(manifest.shards.reduce((total, shard) => total + shard.bytes, 0)).toBe(30 * 6 * 2);
    const cache = await openFeatureCache(directory, KEY);
    const all = await cache.source.read([...Array(30).keys()]);
    const { rows } = await expectedRows(memorySource(30, labels(30)));
    expect(all.data).toEqual(float16ToFloat32(float32ToFloat16(rows)));
    expect(relativeError(all.data, rows).relative).toBeLessThan(2 ** -11);
    const single = await (await openFeatureCache(directory, KEY)).source.read([17]);
    expect(single.data).toEqual(all.data.subarray(17 * 6, 18 * 6));
  });

  it('resumes a killed extraction from its last complete shard and ends identical to an uninterrupted run', async () => {
    const clean = join(root, `clean-${run}`);
    const reference = await writeFeatureCache(clean, options());
    const killed = fresh();
    const killAfterTwoShards = options({
      onProgress: ({ shards }) => {
        if (shards === 2) throw new Error('killed');
      },
    });
    await expect(writeFeatureCache(killed, killAfterTwoShards)).rejects.toThrow('killed');
    await writeFile(join(killed, '.shard-00002.bin.0123456789ab.tmp'), 'left by the killed run');
    await expect(openFeatureCache(killed, KEY)).rejects.toThrow(
      `the feature cache at ${killed} is incomplete (24 of 30 images): extraction was interrupted`,
    );
    let extractedImages = 0;
    const resumed = await writeFeatureCache(
      killed,
      options({
        extract: (batch) => {
          extractedImages += batch.shape[0];
          return trunk(batch);
        },
      }),
    );
    expect(extractedImages).toBe(6);
    expect(resumed.shards.map((shard) => shard.sha256)).toEqual(reference.shards.map((shard) => shard.sha256));
    expect((await readdir(killed)).sort()).toEqual(['manifest.json', 'shard-00000.bin', 'shard-00001.bin', 'shard-00002.bin']);
    expect((await openFeatureCache(killed, KEY)).targets).toEqual((await openFeatureCache(clean, KEY)).targets);
    // A complete cache is returned as it is, without extracting again.
    await writeFeatureCache(killed, options({ extract: () => Promise.reject(new Error('should not run')) }));
  });

  it('shards written one by one in any order (as workers do) give the files and manifest of writeFeatureCache', async () => {
    const reference = await writeFeatureCache(join(root, `in-order-${run}`), options());
    const directory = fresh();
    const planned = await startFeatureCache(directory, { ...options(), source: options().source });
    expect(planned.missingShards).toEqual([0, 1, 2]);
    const entries = [];
    for (const index of [2, 0, 1]) entries.push(await writeCacheShard(directory, planned, index, options()));
    let manifest = planned;
    manifest = await recordShard(directory, manifest, entries[0]);
    expect(manifest).toMatchObject({ missingShards: [0, 1], complete: false });
    await expect(openFeatureCache(directory, KEY)).rejects.toThrow('is incomplete (6 of 30 images)');
    manifest = await recordShard(directory, manifest, entries[1]);
    manifest = await recordShard(directory, manifest, entries[1]);
    manifest = await recordShard(directory, manifest, entries[2]);
    expect(manifest).toEqual(reference);
    expect(JSON.parse(await readFile(join(directory, 'manifest.json'), 'utf8'))).toEqual(reference);
    await expect(writeCacheShard(directory, planned, 3, options())).rejects.toThrow('shard 3 is not in the plan of this cache (3 shards)');
  });

  it('refuses a cache made for another key, naming the field that differs', async () => {
    await writeFeatureCache(fresh(), options());
    const otherSize = { ...KEY, preprocessing: { ...(KEY.preprocessing as object), size: [224, 224] } };
    await expect(openFeatureCache(directory, otherSize)).rejects.toThrow(
      `the feature cache at ${directory} was made for something else: key.preprocessing.size[0] is 32 in the cache but 224 was expected`,
    );
    await expect(openFeatureCache(directory, { ...KEY, cut: 'layer3.1.relu' })).rejects.toThrow(
      'key.cut is "layer3.2.relu" in the cache but "layer3.1.relu" was expected',
    );
    const { mean: _dropped, ...withoutMean } = (KEY.preprocessing as { normalize: { mean: number[]; std: number[] } }).normalize;
    await expect(
      openFeatureCache(directory, { ...KEY, preprocessing: { ...(KEY.preprocessing as object), normalize: withoutMean } }),
    ).rejects.toThrow('key.preprocessing.normalize.mean is [0.485,0.456,0.406] in the cache but absent was expected');
    await expect(writeFeatureCache(directory, options({ key: { ...KEY, modelHash: 'sha256:ffff' } }))).rejects.toThrow('key.modelHash');
    await expect(writeFeatureCache(directory, options({ dtype: 'float16' }))).rejects.toThrow(
      `cannot resume the feature cache at ${directory}: dtype was "float32" when it was started, now "float16"`,
    );
    await expect(openFeatureCache(join(root, 'nothing-here'), KEY)).rejects.toThrow(
      'manifest.json: not found: no feature cache in this directory',
    );
  });

  it('verifies every shard when the cache is opened, naming a corrupt or truncated one and how to rebuild it', async () => {
    const manifest = await writeFeatureCache(fresh(), options());
    const shard = join(directory, manifest.shards[1].file);
    const bytes = await readFile(shard);
    bytes[5] ^= 0x40;
    await writeFile(shard, bytes);
    await expect(openFeatureCache(directory, KEY)).rejects.toThrow(
      `${shard}: checksum does not match the manifest: the shard is corrupt; delete ${directory} and run the extraction again to rebuild the cache`,
    );
    await writeFile(shard, bytes.subarray(0, 100));
    await expect(openFeatureCache(directory, KEY)).rejects.toThrow(`${shard}: has 100 bytes, the manifest says 288`);
  });

  it('hashes a shard larger than its read buffers whole, and catches a byte flipped near its end', async () => {
    // 10 MB: two full 4 MB chunks and a partial one, read into two alternating buffers.
    const bytes = Buffer.from(Float32Array.from({ length: 2.5 * 1024 * 1024 }, (_, i) => Math.sin(i)).buffer);
    const shard = { file: `big-shard-${run}.bin`, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    await writeFile(join(root, shard.file), bytes);
    expect(await verifyShards(root, [shard])).toMatchObject({ shards: 1, bytes: bytes.length });
    bytes[bytes.length - 3] ^= 0x01;
    await writeFile(join(root, shard.file), bytes);
    await expect(verifyShards(root, [shard])).rejects.toThrow(`${join(root, shard.file)}: checksum does not match the manifest`);
  });

  it('catches rows zeroed in place (same size) before training reads any, and reports what verifying cost', async () => {
    const manifest = await writeFeatureCache(fresh(), options());
    const verified = await openFeatureCache(directory, KEY);
    expect(verified.verification.shards).toBe(manifest.shards.length);
    expect(verified.verification.bytes).toBe(manifest.shards.reduce((total, shard) => total + shard.bytes, 0));
    expect(verified.verification.seconds).toBeGreaterThanOrEqual(0);
    // 10 % of the rows: 3 of 30, in the last shard; shuffled training reads single rows, which never load a shard whole.
    const shard = join(directory, manifest.shards[2].file);
    const bytes = await readFile(shard);
    bytes.fill(0, 0, 3 * 6 * 4);
    await writeFile(shard, bytes);
    await expect(openFeatureCache(directory, KEY)).rejects.toThrow(`${shard}: checksum does not match the manifest`);
  });

  it('reads any rows in any order straight from the shard files, into a given buffer, naming a shard that went missing', async () => {
    const manifest = await writeFeatureCache(fresh(), options());
    const cache = await openFeatureCache(directory, KEY);
    const { rows: expected } = await expectedRows(memorySource(30, labels(30)));
    // Runs inside one shard, across a shard boundary (rows 11, 12), backwards, repeated.
    const indices = [29, 3, 4, 5, 11, 12, 0, 7, 7, 28, 27];
    const into = new Float32Array(indices.length * 6).fill(Number.NaN);
    const batch = await cache.source.read(indices, into);
    expect(batch.data).toBe(into);
    expect(batch.shape).toEqual([indices.length, 2, 3]);
    for (const [k, row] of indices.entries()) {
      expect(Array.from(into.subarray(k * 6, k * 6 + 6))).toEqual(Array.from(expected.subarray(row * 6, row * 6 + 6)));
    }
    // A buffer of another size is not used.
    expect((await cache.source.read([1, 2], new Float32Array(3))).data.length).toBe(12);
    await rm(join(directory, manifest.shards[0].file));
    expect((await cache.source.read([12, 13])).shape).toEqual([2, 2, 3]);
    await expect(cache.source.read([3])).rejects.toThrow(`${join(directory, manifest.shards[0].file)}: file not found`);
  });

  it('drops skipped images but records them, keeping labels aligned, also when the last batch is all bad', async () => {
    const bad = new Set([3, 4, 17, 28, 29]);
    const source = memorySource(30, labels(30), bad);
    const manifest = await writeFeatureCache(fresh(), options({ source }));
    expect(manifest.counts).toEqual({ images: 25, rows: 25, skipped: 5 });
    expect(manifest.shards.flatMap((shard) => shard.skipped.map((skipped) => skipped.index))).toEqual([3, 4, 17, 28, 29]);
    const cache = await openFeatureCache(directory, KEY);
    const { indices, rows } = await expectedRows(source);
    expect(cache.targets).toEqual(selectTargets(labels(30), indices));
    expect((await cache.source.read([...Array(25).keys()])).data).toEqual(rows);
  });

  it('keeps multi-label targets with their difficult flags', async () => {
    const positive = Uint8Array.from({ length: 30 * 4 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const difficult = Uint8Array.from({ length: 30 * 4 }, (_, i) => (i % 7 === 1 ? 1 : 0));
    const targets: Targets = { kind: 'multi-label', classCount: 4, positive, difficult };
    await writeFeatureCache(fresh(), options({ source: memorySource(30, targets) }));
    expect((await openFeatureCache(directory, KEY)).targets).toEqual(targets);
  });
});

describeWithShared('feature cache over the real CIFAR-10 records', () => {
  it('caches per-channel means of 4,000 preprocessed images, equal to computing them from the binary file', async () => {
    const file = sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin');
    const { path, remove } = await temporaryDirectory();
    const pipeline = await ImagePipeline.create(await openCifar('cifar10', file), {
      transform: { size: [32, 32], crop: 'center' },
      workers: 2,
    });
    try {
      const channelMeans = async (batch: HostTensor): Promise<HostTensor> => {
        const rows = batch.shape[0];
        const data = new Float32Array(rows * 3);
        for (let i = 0; i < rows * 3; i++) data[i] = batch.data.subarray(i * 1024, (i + 1) * 1024).reduce((a, b) => a + b, 0) / 1024;
        return { shape: [rows, 3], data };
      };
      const key = { ...KEY, dataset: `cifar10:${file} train` };
      const manifest = await writeFeatureCache(path, {
        key,
        source: pipeline,
        extract: channelMeans,
        sampleShape: [3],
        batchSize: 256,
        shardBytes: 1000 * 12,
      });
      expect(manifest.shards).toHaveLength(4);
      const cache = await openFeatureCache(path, key);
      const bytes = await readFile(file);
      for (const record of [0, 999, 1000, 3999]) {
        const expected = [0, 1, 2].map(
          (c) => bytes.subarray(record * 3073 + 1 + c * 1024, record * 3073 + 1 + (c + 1) * 1024).reduce((a, b) => a + b, 0) / 1024 / 255,
        );
        const [cached] = [await cache.source.read([record])];
        expect(relativeError(cached.data, expected).relative).toBeLessThan(1e-6);
      }
      expect(cache.targets).toEqual(await (await openCifar('cifar10', file)).targets());
    } finally {
      await pipeline.close();
      await remove();
    }
  });
});
