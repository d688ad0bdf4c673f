import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunDirectory } from '@gradfeat/core';
import { CIFAR10_CLASSES } from '@gradfeat/datasets';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, hasShared, sharedPath } from '../../../test-support/shared.js';
import { decodeSafetensors } from '../src/safetensors.js';
import { loadTrainedModel, predict } from '../src/trained-model.js';
import { runCli } from './run-cli.js';

const RECORD = 1 + 3 * 32 * 32;
let work = '';
const data = () => join(work, 'cifar-jpg');
const run = () => join(work, 'run');

interface PredictOutput {
  readonly accuracy?: number;
  readonly images: number;
  readonly predictions: { file: string; label?: string; top: { className: string; classIndex: number; probability: number }[] }[];
}

/** `gradfeat predict … --json`, parsed. */
async function predictJson(args: string[]): Promise<PredictOutput> {
  const result = await runCli(['predict', ...args, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout);
}

/**
 * A small CIFAR-10 JPEG folder like the shared archive (train/<class>/, test/<class>/, quality 75),
 * written from the first 500 shared records: 300 to train, 200 to test.
 */
beforeAll(async () => {
  if (!hasShared) return;
  work = mkdtempSync(join(tmpdir(), 'gradfeat-predict-'));
  const records = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
  for (const [split, from, count] of [['train', 0, 300] as const, ['test', 300, 200] as const]) {
    for (let r = from; r < from + count; r++) {
      const record = records.subarray(r * RECORD, (r + 1) * RECORD);
      const rgb = Buffer.alloc(3072);
      for (let i = 0; i < 1024; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = record[1 + c * 1024 + i];
      const folder = join(data(), split, CIFAR10_CLASSES[record[0]]);
      mkdirSync(folder, { recursive: true });
      writeFileSync(
        join(folder, `${String(r).padStart(4, '0')}.jpg`),
        await sharp(rgb, { raw: { width: 32, height: 32, channels: 3 } })
          .jpeg({ quality: 75 })
          .toBuffer(),
      );
    }
  }
  const compared = await runCli([
    'compare',
    ...['--model', sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx'), '--dataset', `folder:${data()}`, '--cut', 'layer3.1'],
    ...['--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225', '--image-size', '32'],
    ...['--epochs', '1', '--batch-size', '16', '--seed', '4', '--out', run()],
  ]);
  if (compared.code !== 0) throw new Error(`compare failed: ${compared.stderr}`);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const reported = () =>
  Object.fromEntries(
    (JSON.parse(readFileSync(join(run(), 'metrics.json'), 'utf8')).methods as { method: string; top1: number }[]).map((m) => [
      m.method,
      m.top1,
    ]),
  );

describeWithShared('gradfeat predict and export on a ResNet-20 run over CIFAR-10 JPEGs', () => {
  it("predict reproduces each method's reported test accuracy exactly on the test folder (the library API, then the command)", async () => {
    const accuracies = reported();
    for (const method of ['activation', 'gradient', 'full', 'finetune'] as const) {
      const model = await loadTrainedModel(run(), { method });
      try {
        const { accuracy, predictions } = await predict(model, [join(data(), 'test')], { top: 3, workers: 0 });
        expect(predictions).toHaveLength(200);
        expect(accuracy, method).toBe(accuracies[method]);
        for (const p of predictions) {
          expect(p.top).toHaveLength(3);
          expect(p.top[0].probability).toBeGreaterThanOrEqual(p.top[1].probability);
          expect(p.label).toBe(p.file.split('/').at(-2));
        }
      } finally {
        await model.close();
      }
    }
    const output = await predictJson(['--run', run(), '--method', 'finetune', '--input', join(data(), 'test')]);
    expect(output.images).toBe(200);
    expect(output.accuracy).toBe(accuracies.finetune);
  });

  it('the exported ONNX file states its method, cut, classes and preprocessing, and predicts exactly what the run predicts', async () => {
    const file = join(work, 'full.onnx');
    const exported = await runCli(['export', '--run', run(), '--method', 'full', '--output', file]);
    expect(exported.code, exported.stderr).toBe(0);

    const info = await runCli(['info', '--model', file, '--json']);
    expect(info.code, info.stderr).toBe(0);
    const described = JSON.parse(info.stdout);
    const { theta2Parameters } = JSON.parse(readFileSync(join(run(), 'metrics.json'), 'utf8'));
    expect(described.gradfeatExport).toMatchObject({
      method: 'full',
      cut: 'layer3.1',
      parametrisation: 'ntk',
      theta2Size: theta2Parameters,
    });
    expect(described.gradfeatExport.version).toBe(JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')).version);
    expect(described.classNames).toEqual(CIFAR10_CLASSES);
    expect(described.preprocessing).toEqual({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], size: [32, 32] });

    const fromRun = await predictJson(['--run', run(), '--input', join(data(), 'test')]);
    const fromFile = await predictJson(['--model', file, '--input', join(data(), 'test')]);
    expect(fromFile.accuracy).toBe(reported().full);
    expect(fromFile.predictions.map((p) => [p.file, p.top[0].className])).toEqual(
      fromRun.predictions.map((p) => [p.file, p.top[0].className]),
    );
    for (const [i, p] of fromFile.predictions.entries())
      expect(p.top[0].probability).toBeCloseTo(fromRun.predictions[i].top[0].probability, 4);
  });

  it('predicts single files and plain folders (no accuracy), and refuses an ONNX file gradfeat did not export', async () => {
    const folder = join(data(), 'test', 'cat');
    const output = await predictJson(['--run', run(), '--input', folder, join(data(), 'test', 'dog'), '--top', '10']);
    expect(output.accuracy).toBeUndefined();
    expect(output.predictions[0].file.startsWith(folder)).toBe(true);
    for (const p of output.predictions) expect(p.top.reduce((total, c) => total + c.probability, 0)).toBeCloseTo(1, 6);
    const text = await runCli(['predict', '--run', run(), '--input', output.predictions[0].file, '--top', '2']);
    expect(text.stdout).toContain(output.predictions[0].top[0].className);

    const foreign = await runCli(['predict', '--model', sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx'), '--input', folder]);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain("not written by gradfeat export (no 'gradfeat' metadata)");
  });

  it('export --format safetensors writes the checkpoint tensors, ω̄ and the parametrisation, readable without gradfeat', async () => {
    const file = join(work, 'gradient.safetensors');
    const exported = await runCli(['export', '--run', run(), '--method', 'gradient', '--format', 'safetensors', '--output', file]);
    expect(exported.code, exported.stderr).toBe(0);
    const bytes = readFileSync(file);
    const { tensors, metadata } = decodeSafetensors(bytes, file);

    const directory = await RunDirectory.open(run());
    const checkpoint = await directory.loadCheckpoint('gradient');
    const activation = await directory.loadCheckpoint('activation');
    if (!checkpoint || !activation) throw new Error('the run has no gradient or activation checkpoint');
    expect([...tensors.keys()].sort()).toEqual([...checkpoint.params.keys(), 'omega_bar.bias', 'omega_bar.weight'].sort());
    for (const [name, tensor] of checkpoint.params) {
      expect(tensors.get(name)?.shape, name).toEqual(tensor.shape);
      expect(tensors.get(name)?.data, name).toEqual(tensor.data);
    }
    expect(tensors.get('omega_bar.weight')?.data).toEqual(activation.params.get('w1.weight')?.data);
    expect(JSON.parse(metadata.gradfeat)).toMatchObject({ method: 'gradient', parametrisation: 'ntk', cut: 'layer3.1' });
    // NTK: each θ2 weight is stored divided by √(1/C_out); layer3.2's convolutions have 64 output channels.
    expect(JSON.parse(metadata.scales)['layer3.2.conv1.weight']).toBeCloseTo(1 / 8, 12);

    // The header's byte ranges cover the data exactly, as a safetensors reader requires.
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    const ranges = Object.entries(header)
      .filter(([name]) => name !== '__metadata__')
      .map(([, entry]) => (entry as { data_offsets: [number, number] }).data_offsets)
      .sort((a, b) => a[0] - b[0]);
    expect(ranges[0][0]).toBe(0);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).toBe(ranges[i - 1][1]);
    expect(ranges.at(-1)?.[1]).toBe(bytes.length - 8 - headerLength);
    expect((8 + headerLength) % 8).toBe(0);
  });
});
