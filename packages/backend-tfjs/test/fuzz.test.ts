import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fuzz from '../../../test-support/fuzz.js';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';
import { branchyModel, saveModel, sequentialModel } from './keras-models.js';

/** Whether a weightsManifest path reads outside the model's folder (then the import must fail). */
function escapes(folder: string, path: unknown): boolean {
  if (typeof path !== 'string') return false;
  const rest = relative(folder, resolve(folder, path));
  return rest === '' || rest.startsWith('..') || isAbsolute(rest);
}

function manifestPaths(modelJson: unknown): unknown[] {
  const manifest = (modelJson as { weightsManifest?: unknown } | null)?.weightsManifest;
  return Array.isArray(manifest) ? manifest.flatMap((group) => (Array.isArray(group?.paths) ? group.paths : [])) : [];
}

describe('fuzzing the TF.js model reader (model.json and weight files, in a child process)', () => {
  let root: string;
  let cases = 0;
  const seeds: { folder: string; modelJson: unknown; weightFiles: string[] }[] = [];
  const isolated = new Isolated(fileURLToPath(new URL('./isolated-targets.ts', import.meta.url)), fuzz.CALL_TIMEOUT_MS);

  beforeAll(async () => {
    await tf.setBackend('cpu');
    root = await mkdtemp(join(tmpdir(), 'gradfeat-fuzz-tfjs-'));
    // A file of the size a weight group could need, where escaping paths lead.
    await writeFile(join(root, 'outside.bin'), Buffer.alloc(64));
    for (const [name, build, shards] of [
      ['sequential', sequentialModel, 1],
      ['branchy', branchyModel, 2],
    ] as const) {
      const folder = join(root, `seed-${name}`);
      await mkdir(folder);
      const model = build();
      await saveModel(model, folder, shards);
      model.dispose();
      const modelJson = JSON.parse(await readFile(join(folder, 'model.json'), 'utf8'));
      seeds.push({ folder, modelJson, weightFiles: (await readdir(folder)).filter((file) => file !== 'model.json').sort() });
    }
  });
  afterAll(async () => {
    await isolated.close();
    await rm(root, { recursive: true, force: true });
  });

  it(`${fuzz.runs(400)} mutated models (seed ${fuzz.SEED}) each import, or fail with an error naming the model's folder; none reads outside it`, async () => {
    for (const seed of seeds) {
      const outcome = await isolated.call('importModel', join(seed.folder, 'model.json'));
      expect(outcome.kind, describeOutcome(outcome)).toBe('returned');
    }
    const weightSeeds: fuzz.FuzzSeed[] = await Promise.all(
      seeds.flatMap((seed) => seed.weightFiles.map(async (file) => ({ bytes: await readFile(join(seed.folder, file)) }))),
    );
    const owners = seeds.flatMap((seed, s) => seed.weightFiles.map((file) => ({ seed: s, file })));
    const mutation = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({ kind: fc.constant('model.json' as const), json: fuzz.mutatedJson(seeds.map((s) => s.modelJson)) }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('weights' as const), bytes: fuzz.mutatedBytes(weightSeeds) }) },
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (input) => {
        const folder = join(root, `case-${cases++}`, 'model');
        const seed = seeds[input.kind === 'model.json' ? input.json.seed : owners[input.bytes.seed].seed];
        await cp(seed.folder, folder, { recursive: true });
        let modelJson = seed.modelJson;
        if (input.kind === 'model.json') {
          modelJson = fuzz.applyJsonMutations(
            seeds.map((s) => s.modelJson),
            input.json,
          );
          await writeFile(join(folder, 'model.json'), JSON.stringify(modelJson));
        } else {
          await writeFile(join(folder, owners[input.bytes.seed].file), fuzz.applyByteMutations(weightSeeds, input.bytes));
        }
        const outcome = await isolated.call('importModel', join(folder, 'model.json'));
        const files = await Promise.all((await readdir(folder)).map((file) => readFile(join(folder, file))));
        const inputBytes = files.reduce((total, file) => total + file.length, 0);
        fuzz.expectClean(
          outcome,
          { names: [folder], errors: ['Error'], maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES + 16 * inputBytes },
          `${input.kind} mutation`,
        );
        if (manifestPaths(modelJson).some((path) => escapes(folder, path))) {
          expect(outcome.kind, `a weight path leaves the model's folder: ${describeOutcome(outcome)}`).toBe('threw');
        }
      }),
      { seed: fuzz.SEED, numRuns: fuzz.runs(400) },
    );
  });
});
