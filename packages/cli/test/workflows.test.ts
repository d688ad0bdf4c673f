import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, hasShared } from '../../../test-support/shared.js';
import { runCli, runCliKilledAt } from './run-cli.js';
import { RECORD, writeSmallCifarRun } from './small-cifar.js';

let work = '';

/** ResNet-20 on small CIFAR-10 files cut from the shared records: 5 × 48 to train, 120 to test. */
function runArgs(out: string): string[] {
  return ['--config', join(work, 'run.yaml'), '--out', out];
}

beforeAll(() => {
  if (!hasShared) return;
  work = mkdtempSync(join(tmpdir(), 'gradfeat-workflow-'));
  writeSmallCifarRun(work, [`cacheDir: ${join(work, 'cache')}`]);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const metricsOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).methods;

describeWithShared('gradfeat compare, train --resume, eval and export on ResNet-20', () => {
  it('compare writes the report files and gives the same numbers twice with the same seed', async () => {
    const first = await runCli(['compare', ...runArgs(join(work, 'a')), '--json']);
    expect(first.code, first.stderr).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(Object.keys(result.methods)).toEqual(['activation', 'gradient', 'full', 'finetune']);
    for (const file of ['config.json', 'metrics.json', 'report.md', 'curves.svg'])
      expect(readFileSync(join(work, 'a', file)).length).toBeGreaterThan(100);
    expect(readFileSync(join(work, 'a', 'report.md'), 'utf8')).toMatch(/\| full \|/);
    const second = await runCli(['compare', ...runArgs(join(work, 'b')), '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(metricsOf(join(work, 'b')).map((m: { top1: number; finalLoss: number }) => [m.top1, m.finalLoss])).toEqual(
      metricsOf(join(work, 'a')).map((m: { top1: number; finalLoss: number }) => [m.top1, m.finalLoss]),
    );
  });

  it('the linearised models train from a cached point to the numbers of evaluating the head every step', async () => {
    // ResNet-20's last block: evaluating it costs ≈ 380 multiply-adds per cached value, so 'auto' caches the point.
    const points = readdirSync(join(work, 'cache')).filter((name) => name.startsWith('train.point-'));
    expect(points).toHaveLength(1);
    expect(existsSync(join(work, 'cache', points[0], 'manifest.json'))).toBe(true);
    const recomputed = await runCli([
      'compare',
      '--methods',
      'gradient',
      'full',
      '--point-cache',
      'off',
      ...runArgs(join(work, 'c')),
      '--json',
    ]);
    expect(recomputed.code, recomputed.stderr).toBe(0);
    const cached = metricsOf(join(work, 'a')).filter((m: { method: string }) => m.method === 'gradient' || m.method === 'full');
    const fresh = metricsOf(join(work, 'c')).filter((m: { method: string }) => m.method === 'gradient' || m.method === 'full');
    expect(fresh.map((m: { method: string }) => m.method)).toEqual(['gradient', 'full']);
    fresh.forEach((m: { top1: number; finalLoss: number }, i: number) => {
      expect(m.top1).toBe(cached[i].top1);
      expect(Math.abs(m.finalLoss - cached[i].finalLoss) / Math.abs(cached[i].finalLoss)).toBeLessThan(1e-5);
    });
  });

  it('train killed midway and rerun with --resume ends with the metrics of an uninterrupted run', async () => {
    const straight = await runCli(['train', '--method', 'full', ...runArgs(join(work, 'straight'))]);
    expect(straight.code, straight.stderr).toBe(0);
    const out = join(work, 'killed');
    // Killed as soon as the full model has saved a checkpoint.
    await runCliKilledAt(['train', '--method', 'full', ...runArgs(out)], join(out, 'checkpoints', 'full', 'checkpoint.json'));
    expect(() => readFileSync(join(out, 'metrics.json'))).toThrow();
    const resumed = await runCli(['train', '--method', 'full', ...runArgs(out), '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(metricsOf(out)).toEqual(
      metricsOf(join(work, 'straight')).map((m: Record<string, unknown>) => ({ ...m, trainSeconds: expect.any(Number) })),
    );
  });

  it("eval --run reproduces the run, and export writes an ONNX model whose ONNX Runtime predictions match gradfeat's", async () => {
    const evaluated = await runCli(['eval', '--run', join(work, 'a'), '--json']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    const fromRun = metricsOf(join(work, 'a'));
    const results = JSON.parse(evaluated.stdout).results;
    for (const method of fromRun) expect(results[method.method].top1).toBe(method.top1);

    const file = join(work, 'full.onnx');
    const exported = await runCli(['export', '--run', join(work, 'a'), '--method', 'full', '--output', file]);
    expect(exported.code, exported.stderr).toBe(0);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(file);
    const records = readFileSync(join(work, 'test_batch.bin'));
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const count = 120;
    const images = new Float32Array(count * 3072);
    for (let i = 0; i < count * 3072; i++) {
      const channel = Math.floor((i % 3072) / 1024);
      images[i] = (records[Math.floor(i / 3072) * RECORD + 1 + (i % 3072)] / 255 - mean[channel]) / std[channel];
    }
    const output = await session.run({ inputs: new ort.Tensor('float32', images, [count, 3, 32, 32]) });
    const logits = output.logits.data as Float32Array;
    let correct = 0;
    for (let i = 0; i < count; i++) {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === records[i * RECORD]) correct++;
    }
    expect(correct / count).toBeCloseTo(results.full.top1, 10);
  });
});
