import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockDirectory } from '@gradfeat/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, hasShared } from '../../../test-support/shared.js';
import { runCli } from './run-cli.js';
import { writeSmallCifarRun } from './small-cifar.js';

let work = '';
let config = '';

beforeAll(() => {
  if (!hasShared) return;
  work = mkdtempSync(join(tmpdir(), 'gradfeat-run-directories-'));
  // The feature cache stays in its default place, <out>/cache, so it moves with the run.
  config = writeSmallCifarRun(work);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `gradfeat <command> --config run.yaml --out <out>` with more arguments. */
const inRun = (command: string, out: string, ...more: string[]) => runCli([command, '--config', config, '--out', out, ...more]);
/** The linear probe and the full model: the two methods these runs train. */
const BOTH = ['--methods', 'activation', 'full'];
/** Runs whose cache location does not matter share one cache (extracted once) and train one epoch. */
const QUICK = () => ['--cache-dir', join(work, 'shared-cache'), '--epochs', '1'];

describeWithShared('run directories shared by two runs, moved, or resumed after a divergence', () => {
  it('a second compare on the same --out is refused, naming the process that holds it; the first completes', async () => {
    const out = join(work, 'shared');
    const [first, second] = await Promise.all([inRun('compare', out, ...BOTH, ...QUICK()), inRun('compare', out, ...BOTH, ...QUICK())]);
    const outcomes = [first, second].sort((a, b) => a.code - b.code);
    expect(outcomes.map((o) => o.code)).toEqual([0, 1]);
    expect(outcomes[1].stderr).toMatch(new RegExp(`${out}: in use by process \\d+ \\(gradfeat compare, started .*\\) on this machine`));
    expect(`${first.stderr}${second.stderr}`).not.toMatch(/ENOENT|rename/);
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).methods).toHaveLength(2);
  });

  it("refuses while another process holds the run, naming it, and leaves the holder's lock alone", async () => {
    const out = join(work, 'held');
    const lock = await lockDirectory(out, 'a test holding the run');
    const refused = await inRun('compare', out, '--methods', 'activation', ...QUICK());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${out}: in use by process ${process.pid} (a test holding the run`);
    expect(existsSync(join(out, '.gradfeat.lock'))).toBe(true);
    await lock.release();
    expect(readdirSync(out)).toEqual([]);
  });

  it("extract --out refuses a folder of the user's, even one that holds only a folder called cache/", async () => {
    const out = join(work, 'photos');
    mkdirSync(join(out, 'cache', 'summer'), { recursive: true });
    writeFileSync(join(out, 'cache', 'summer', 'holiday.jpg'), 'pixels');
    const refused = await inRun('extract', out);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${out}: the directory is not empty and holds no config.json`);
    expect(readdirSync(join(out, 'cache'))).toEqual(['summer']);
  });

  it('a moved run directory is evaluated and resumed where it is now, without re-creating the old path', async () => {
    const before = join(work, 'before');
    const after = join(work, 'after');
    const trained = await inRun('compare', before, ...BOTH);
    expect(trained.code, trained.stderr).toBe(0);
    renameSync(before, after);
    const evaluated = await runCli(['eval', '--run', after, '--json']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(existsSync(before)).toBe(false);
    const resumed = await inRun('compare', after, ...BOTH, '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(existsSync(before)).toBe(false);
    expect(JSON.parse(evaluated.stdout).results.full.top1).toBe(
      JSON.parse(readFileSync(join(after, 'metrics.json'), 'utf8')).methods[1].top1,
    );
  });

  it('--lr 1e3 stops with the step and the tensor instead of ending "successfully"; --resume --lr continues it, recording the change', async () => {
    const out = join(work, 'diverged');
    const diverged = await inRun('compare', out, ...BOTH, ...QUICK(), '--lr', '1e3');
    expect(diverged.code).toBe(1);
    expect(diverged.stderr).toMatch(/activation: training diverged at step \d+: the loss \(\S+\) has been above 10 × its initial value/);
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    // Another setting changed on --resume is still refused; the learning rate, given with --lr, is an explicit override.
    const refused = await inRun('compare', out, ...BOTH, ...QUICK(), '--resume', '--seed', '7');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('holds a run with a different config');
    const resumed = await inRun('compare', out, ...BOTH, ...QUICK(), '--resume', '--lr', '1e-3');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain("learning rate of 'full' changed from 1000 to 0.001 from step 0 on (recorded in config.json)");
    const stored = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(stored.training.full.learningRate).toBe(0.001);
    expect(stored.learningRateChanges).toEqual(
      ['activation', 'gradient', 'full', 'finetune'].map((method) => ({
        method,
        fromStep: 0,
        from: 1000,
        to: 0.001,
        at: expect.any(String),
      })),
    );
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).learningRateChanges).toEqual(stored.learningRateChanges);
  });
});
