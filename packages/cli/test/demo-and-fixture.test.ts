import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACCEPTANCE_TENSORS } from '../../../test-support/fixture-check.js';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { runCli } from './run-cli.js';

describe('gradfeat demo', () => {
  it('--json reports all four methods, the backend, and the paper pattern (full ≥ activation)', async () => {
    const started = performance.now();
    const run = await runCli(['demo', '--json']);
    const wallSeconds = (performance.now() - started) / 1000;
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(Object.keys(result.methods)).toEqual(['activation', 'gradient', 'full', 'finetune']);
    const methods = Object.values(result.methods) as { accuracy: number; trainSeconds: number }[];
    for (const method of methods) {
      expect(method.accuracy).toBeGreaterThan(0.5);
      expect(method.trainSeconds).toBeGreaterThan(0);
    }
    // The training times are the methods' own: together they fit inside the command's run.
    expect(methods.reduce((total, method) => total + method.trainSeconds, 0)).toBeLessThan(wallSeconds);
    expect(result.backend).toMatch(/onnxruntime|tfjs|js/);
    expect(result.methods.full.accuracy).toBeGreaterThanOrEqual(result.methods.activation.accuracy);
    // Progress goes to stderr as JSON lines when it is not a terminal.
    expect(run.stderr).toMatch(/^{"event":"progress","phase":"pretext"/m);
  });

  it('rejects a malformed option with the option name', async () => {
    const run = await runCli(['demo', '--seed', 'abc']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/--seed takes a whole number/);
  });
});

describeWithShared('gradfeat check-fixture', () => {
  it('--json passes on the PyTorch fixture and lists every tensor', async () => {
    const run = await runCli(['check-fixture', sharedPath('fixtures', 'resnet20-jvp'), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.passed).toBe(true);
    expect(report.comparisons.map((c: { tensor: string }) => c.tensor)).toEqual(expect.arrayContaining([...ACCEPTANCE_TENSORS]));
  });

  it('exits non-zero when a tensor exceeds the tolerance', async () => {
    const run = await runCli(['check-fixture', sharedPath('fixtures', 'resnet20-jvp'), '--tolerance', '1e-12']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/FAIL/);
  });

  it('names the missing manifest of a wrong directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gradfeat-fixture-'));
    try {
      writeFileSync(join(dir, 'note.txt'), 'not a fixture');
      const run = await runCli(['check-fixture', dir]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(join(dir, 'manifest.json'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
