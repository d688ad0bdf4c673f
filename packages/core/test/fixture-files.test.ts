import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';

const targets = fileURLToPath(new URL('./isolated-targets.ts', import.meta.url));

describe("check-fixture's manifest names files inside the fixture folder only (read in a child process)", () => {
  let root: string;
  const isolated = new Isolated(targets, 20_000);

  /** A fixture folder whose manifest lists one float32 tensor of shape [2, 3] stored in `file`. */
  async function fixture(name: string, file: string): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ n: 2, tensors: { z0: { file, shape: [2, 3], meaning: 'test' } } }));
    return dir;
  }

  async function expectRefused(dir: string, problem: RegExp) {
    const outcome = await isolated.call('readFixture', dir);
    expect(outcome.kind, describeOutcome(outcome)).toBe('threw');
    if (outcome.kind !== 'threw') return;
    expect(outcome.error.message).toMatch(problem);
    expect(outcome.peakGrowthBytes, describeOutcome(outcome)).toBeLessThan(64 * 2 ** 20);
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'gradfeat-hostile-fixture-'));
    await writeFile(join(root, 'outside.f32'), Buffer.alloc(24));
  });
  afterAll(async () => {
    await isolated.close();
    await rm(root, { recursive: true, force: true });
  });

  it('reads a well-formed fixture', async () => {
    const dir = await fixture('good', 'z0.f32');
    await writeFile(join(dir, 'z0.f32'), Buffer.alloc(24));
    const outcome = await isolated.call('readFixture', dir);
    expect(outcome, describeOutcome(outcome)).toMatchObject({ kind: 'returned', value: [6] });
  });

  it('refuses a tensor file outside the folder', async () => {
    await expectRefused(
      await fixture('escaping', '../outside.f32'),
      /fixture tensor file '\.\.\/outside\.f32' leaves the fixture's folder/,
    );
  });

  it('refuses a FIFO instead of waiting on it for ever', async () => {
    const dir = await fixture('fifo', 'z0.f32');
    execFileSync('mkfifo', [join(dir, 'z0.f32')]);
    await expectRefused(dir, /fixture tensor file '.*z0\.f32' is not a regular file/);
  });

  it('compares the size with the manifest before reading: a 1.5 GiB file is refused without reading it', async () => {
    const dir = await fixture('huge', 'z0.f32');
    await writeFile(join(dir, 'z0.f32'), '');
    await truncate(join(dir, 'z0.f32'), 1.5 * 2 ** 30);
    await expectRefused(dir, new RegExp(`z0\\.f32: ${1.5 * 2 ** 30} bytes, expected 24 for float32 \\[2, 3\\]`));
  });
});
