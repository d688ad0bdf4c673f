import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import * as fuzz from '../../../test-support/fuzz.js';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const text = (value: string) => new TextEncoder().encode(value);

describe('fuzzing run configs (YAML and JSON, in a child process)', () => {
  let root: string;
  let cases = 0;
  const seeds: fuzz.FuzzSeed[] = [];
  const documents: unknown[] = [];
  const isolated = new Isolated(fileURLToPath(new URL('./isolated-targets.ts', import.meta.url)), fuzz.CALL_TIMEOUT_MS);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gradfeat-fuzz-config-'));
    const experiments = ['base.yaml', 'last-two-blocks.yaml'].map((name) =>
      readFile(join(repo, 'experiments', 'mobilenet-cifar10', name), 'utf8'),
    );
    const complete = [
      'model: models/resnet20.onnx',
      'dataset: cifar10:/data/cifar-10-batches-bin',
      'cut: layer3.1',
      'methods: [activation, gradient, full, finetune]',
      'preprocessing: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], size: [32, 32] }',
      'weightDecaySweep: { values: [0, 1.0e-4], heldOutFraction: 0.1 }',
      'training: { all: { epochs: 2, batchSize: 64, clipNorm: 5 }, full: { optimiser: { kind: adam, beta1: 0.5 } } }',
      'workers: 2',
      'randomise: [omega]',
    ].join('\n');
    // YAML's own hazards: an alias bomb (billion laughs) and deep nesting.
    const laughs = [
      'a: &a [x, x, x, x, x, x, x, x, x]',
      ...'bcdefgh'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(', ')}]`),
    ].join('\n');
    const nested = `methods: ${'['.repeat(500)}${']'.repeat(500)}`;
    for (const yaml of [...(await Promise.all(experiments)), complete]) {
      seeds.push({ bytes: text(yaml) });
      documents.push(parseYaml(yaml));
    }
    seeds.push({ bytes: text(JSON.stringify(documents[2])) }, { bytes: text(laughs) }, { bytes: text(nested) });
  });
  afterAll(async () => {
    await isolated.close();
    await rm(root, { recursive: true, force: true });
  });

  it(`${fuzz.runs(400)} mutated configs (seed ${fuzz.SEED}) each resolve, or fail with errors naming the file and the field`, async () => {
    const first = join(root, 'seed.yaml');
    await writeFile(first, seeds[2].bytes);
    const seeded = await isolated.call('resolveConfigFile', first);
    expect(seeded.kind, describeOutcome(seeded)).toBe('returned');
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('text' as const), bytes: fuzz.mutatedBytes(seeds) }),
      fc.record({ kind: fc.constant('settings' as const), json: fuzz.mutatedJson(documents), asJson: fc.boolean() }),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (input) => {
        let bytes: Uint8Array;
        if (input.kind === 'text') bytes = fuzz.applyByteMutations(seeds, input.bytes);
        else {
          const settings = fuzz.applyJsonMutations(documents, input.json);
          bytes = text(input.asJson ? JSON.stringify(settings) : toYaml(settings));
        }
        const file = join(root, `case-${cases++}.yaml`);
        await writeFile(file, bytes);
        fuzz.expectClean(
          await isolated.call('resolveConfigFile', file),
          { names: [file], errors: ['Error'], maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES + 256 * bytes.length },
          `${input.kind} mutation, ${bytes.length} bytes`,
        );
      }),
      { seed: fuzz.SEED, numRuns: fuzz.runs(400) },
    );
  });
});
