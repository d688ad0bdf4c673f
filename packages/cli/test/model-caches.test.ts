import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Backend,
  createReferenceBackend,
  FEATURES,
  INPUT,
  linearisationPointProgram,
  linearise,
  pointResiduals,
  residualInput,
  runProgramOnce,
  separableBlockNetwork,
} from '@gradfeat/core';
import {
  type BatchOptions,
  type BatchSource,
  type FeatureCache,
  type FeatureCacheKey,
  type ImageBatch,
  openFeatureCache,
  selectTargets,
  type Targets,
  writeFeatureCache,
} from '@gradfeat/datasets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractPoint, pointCacheName } from '../src/model-caches.js';

const model = linearise(separableBlockNetwork({ channels: 4, size: 3, classes: 3, seed: 5 }), { cut: 'input' });
const CUT_SHAPE = [4, 3, 3];
const COUNT = 11;
const targets: Targets = { kind: 'single-label', classCount: 3, labels: Int32Array.from({ length: COUNT }, (_, i) => i % 3) };
const KEY: FeatureCacheKey = { modelHash: 'sha256:trunk', cut: 'input', preprocessing: { size: [3, 3] }, dataset: 'generated:point' };

/** Cut values that are already "trunk outputs": row i is filled from a hash of i. */
function cutValues(): BatchSource {
  const size = 36;
  return {
    count: COUNT,
    classNames: ['a', 'b', 'c'],
    labelKind: 'single-label',
    cropsPerImage: 1,
    async *batches({ batchSize, start = 0 }: BatchOptions): AsyncGenerator<ImageBatch> {
      for (let first = start; first < COUNT; first += batchSize) {
        const indices = Array.from({ length: Math.min(batchSize, COUNT - first) }, (_, i) => first + i);
        const data = new Float32Array(indices.length * size);
        indices.forEach((index, row) => {
          for (let j = 0; j < size; j++) data[row * size + j] = Math.sin(index * 12.9898 + j * 78.233) * 3;
        });
        yield {
          indices,
          images: { shape: [indices.length, ...CUT_SHAPE], data },
          targets: selectTargets(targets, indices),
          skipped: [],
          nextStart: first + indices.length,
        };
      }
    },
  };
}

describe('the linearisation-point cache', () => {
  const backend = createReferenceBackend();
  let dir: { path: string; remove: () => Promise<void> };
  let cut: FeatureCache;
  beforeAll(async () => {
    const path = await mkdtemp(join(tmpdir(), 'gradfeat-point-'));
    dir = { path, remove: () => rm(path, { recursive: true, force: true }) };
    await writeFeatureCache(`${dir.path}/train`, {
      key: KEY,
      source: cutValues(),
      extract: async (batch) => batch,
      sampleShape: CUT_SHAPE,
      batchSize: 4,
    });
    cut = await openFeatureCache(`${dir.path}/train`, KEY);
  });
  afterAll(() => dir.remove());

  it('holds, per sample, the features and residuals the point program computes from its cut value', async () => {
    const { data: point } = await extractPoint({ backend, model, cut, cacheDir: `${dir.path}/train.point`, batchSize: 3 });
    expect(Object.keys(point.residuals).sort()).toEqual([...pointResiduals(model).keys()].sort());
    const rows = [10, 0, 7, 3];
    const expected = await runProgramOnce(backend, linearisationPointProgram(model), { [INPUT]: await cut.source.read(rows) }, 'point');
    expect([...(await point.features.read(rows)).data]).toEqual([...expected[FEATURES].data]);
    for (const [name, source] of Object.entries(point.residuals)) {
      const read = await source.read(rows);
      expect(read.shape).toEqual([rows.length, ...(pointResiduals(model).get(name) as number[])]);
      expect([...read.data], name).toEqual([...expected[residualInput(name)].data]);
    }
  });

  it('is reused once complete: the head is not evaluated again', async () => {
    const refusing: Backend = {
      name: 'refusing',
      compile: () => Promise.reject(new Error('the point was computed again')),
    };
    const { data: point } = await extractPoint({ backend: refusing, model, cut, cacheDir: `${dir.path}/train.point` });
    expect(point.features.count).toBe(COUNT);
  });

  it('refuses a directory holding the point of another head', async () => {
    const other = linearise(separableBlockNetwork({ channels: 4, size: 3, classes: 3, seed: 6 }), { cut: 'input' });
    await expect(extractPoint({ backend, model: other, cut, cacheDir: `${dir.path}/train.point` })).rejects.toThrow(/train\.point/);
  });

  it('names one folder per head, so heads that share the cut values (a random θ2 or ω) keep their points apart', () => {
    const name = pointCacheName('train', model, cut);
    expect(name).toMatch(/^train\.point-[0-9a-f]{12}$/);
    expect(pointCacheName('train', model, cut)).toBe(name);
    const other = linearise(separableBlockNetwork({ channels: 4, size: 3, classes: 3, seed: 6 }), { cut: 'input' });
    expect(pointCacheName('train', other, cut)).not.toBe(name);
  });
});
