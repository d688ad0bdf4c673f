import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fuzz from '../../../test-support/fuzz.js';
import { Isolated } from '../../../test-support/isolated.js';
import { writeFeatureCache } from '../src/cache.js';
import { CACHE_KEY, cifarRecords, labels, memorySource, smallCacheOptions, temporaryDirectory } from './helpers.js';

const targets = fileURLToPath(new URL('./isolated-targets.ts', import.meta.url));
const text = (value: string) => new TextEncoder().encode(value);

describe('fuzzing the dataset readers (in a child process)', () => {
  let root: string;
  let remove: () => Promise<void>;
  let cases = 0;
  const isolated = new Isolated(targets, fuzz.CALL_TIMEOUT_MS);
  const caseDirectory = async () => {
    const directory = join(root, `case-${cases++}`);
    await mkdir(directory);
    return directory;
  };
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
  });
  afterAll(async () => {
    await isolated.close();
    await remove();
  });

  it(`CIFAR: ${fuzz.runs(300)} mutated binary files (seed ${fuzz.SEED}) each load, or fail with a DatasetFileError naming the file`, async () => {
    const records = cifarRecords(3, (r) => [r * 4]);
    // The label bytes, and 2 × 3 + 2 bytes in: any other record size shows as a wrong length.
    const seeds: fuzz.FuzzSeed[] = [
      { bytes: records, fields: [[{ offset: 0, bytes: 1 }], [{ offset: 3073, bytes: 1 }], [{ offset: 6146, bytes: 1 }]] },
    ];
    await fc.assert(
      fc.asyncProperty(fuzz.mutatedBytes(seeds), async (input) => {
        const bytes = fuzz.applyByteMutations(seeds, input);
        const file = join(await caseDirectory(), 'data_batch_1.bin');
        await writeFile(file, bytes);
        fuzz.expectClean(
          await isolated.call('readCifar', file),
          { names: [file], errors: ['DatasetFileError'], maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES + 4 * bytes.length },
          `${bytes.length}-byte CIFAR file`,
        );
      }),
      { seed: fuzz.SEED, numRuns: fuzz.runs(300) },
    );
  });

  it(`VOC: ${fuzz.runs(400)} mutated annotation files (seed ${fuzz.SEED}) each parse, or fail with a DatasetFileError naming the file`, async () => {
    const object = (name: string, difficult: number) =>
      `<object><name>${name}</name><pose>Left</pose><truncated>1</truncated><difficult>${difficult}</difficult><bndbox><xmin>2</xmin><ymin>1</ymin><xmax>9</xmax><ymax>8</ymax></bndbox><part><name>head</name></part></object>`;
    const seeds: fuzz.FuzzSeed[] = [
      text(
        `<annotation><folder>VOC2007</folder><filename>000001.jpg</filename><size><width>20</width><height>10</height><depth>3</depth></size>${object('dog', 0)}${object('person', 1)}</annotation>`,
      ),
      text(
        `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;">]><annotation>${object('&y;', 0)}</annotation>`,
      ),
      text(`<annotation>${'<size>'.repeat(300)}${'</size>'.repeat(300)}${object('cat', 0)}</annotation>`),
    ].map((bytes) => ({ bytes }));
    await fc.assert(
      fc.asyncProperty(fuzz.mutatedBytes(seeds), async (input) => {
        const bytes = fuzz.applyByteMutations(seeds, input);
        const file = join(await caseDirectory(), 'annotation.xml');
        await writeFile(file, bytes);
        fuzz.expectClean(
          await isolated.call('parseVocFile', file),
          { names: [file], errors: ['DatasetFileError'], maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES + 256 * bytes.length },
          `${bytes.length}-byte annotation`,
        );
      }),
      { seed: fuzz.SEED, numRuns: fuzz.runs(400) },
    );
  });

  it(`feature cache: ${fuzz.runs(300)} caches with a mutated manifest or shard (seed ${fuzz.SEED}) each read back exactly, or fail naming the cache`, async () => {
    const seeds: { directory: string; manifest: unknown; shards: string[]; rows: number; sum: number }[] = [];
    for (const dtype of ['float32', 'float16'] as const) {
      const directory = join(root, `seed-${dtype}`);
      await writeFeatureCache(directory, smallCacheOptions({ source: memorySource(30, labels(30), new Set([7])), dtype }));
      const read = await isolated.call('readFeatureCache', directory, CACHE_KEY);
      if (read.kind !== 'returned') throw new Error(`the seed cache does not read back: ${JSON.stringify(read)}`);
      const { rows, sum } = read.value as { rows: number; sum: number };
      const shards = (await readdir(directory)).filter((name) => name.startsWith('shard-')).sort();
      seeds.push({ directory, manifest: JSON.parse(await readFile(join(directory, 'manifest.json'), 'utf8')), shards, rows, sum });
    }
    const shardSeeds = await Promise.all(
      seeds.flatMap((seed) => seed.shards.map(async (shard) => ({ bytes: await readFile(join(seed.directory, shard)) }))),
    );
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant('manifest' as const),
        cache: fc.nat({ max: seeds.length - 1 }),
        json: fuzz.mutatedJson(seeds.map((s) => s.manifest)),
      }),
      fc.record({ kind: fc.constant('shard' as const), bytes: fuzz.mutatedBytes(shardSeeds) }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (input) => {
        const directory = await caseDirectory();
        let seed = seeds[0];
        let changedShard = false;
        if (input.kind === 'manifest') {
          seed = seeds[input.cache];
          await cp(seed.directory, directory, { recursive: true });
          await writeFile(
            join(directory, 'manifest.json'),
            JSON.stringify(fuzz.applyJsonMutations([seed.manifest], { ...input.json, seed: 0 })),
          );
        } else {
          const cache = Math.floor(input.bytes.seed / seeds[0].shards.length);
          seed = seeds[cache];
          await cp(seed.directory, directory, { recursive: true });
          const shard = seed.shards[input.bytes.seed % seeds[0].shards.length];
          const bytes = fuzz.applyByteMutations(shardSeeds, input.bytes);
          changedShard = !Buffer.from(bytes).equals(shardSeeds[input.bytes.seed].bytes);
          await writeFile(join(directory, shard), bytes);
        }
        const outcome = await isolated.call('readFeatureCache', directory, CACHE_KEY);
        fuzz.expectClean(
          outcome,
          { names: [directory], errors: ['DatasetFileError', 'Error'], maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES },
          `${input.kind} mutation`,
        );
        // A cache that reads back holds exactly the stored features: changed shard bytes never pass unnoticed.
        if (outcome.kind === 'returned') {
          expect(changedShard, 'a changed shard was read without an error').toBe(false);
          expect(outcome.value).toEqual({ rows: seed.rows, sum: seed.sum });
        }
      }),
      { seed: fuzz.SEED, numRuns: fuzz.runs(300) },
    );
  });
});
