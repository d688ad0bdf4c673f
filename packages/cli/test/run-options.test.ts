import { describe, expect, it } from 'vitest';
import { resolveRunFlags } from '../src/run-options.js';

describe('run flags', () => {
  const base = { model: 'net.onnx', dataset: 'cifar10:/data', cut: 'layer3.1' };

  it('map onto the run config: per-method training, preprocessing and the weight-decay sweep', async () => {
    const config = await resolveRunFlags({
      ...base,
      epochs: 3,
      lr: 0.01,
      mean: [0.5, 0.5, 0.5],
      std: [0.2, 0.2, 0.2],
      imageSize: 32,
      sweepWeightDecay: [0, 1e-4],
    });
    for (const method of ['activation', 'gradient', 'full', 'finetune'] as const) {
      expect(config.training[method].epochs).toBe(3);
      expect(config.training[method].learningRate).toBe(0.01);
    }
    expect(config.preprocessing).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2], size: [32, 32] });
    expect(config.weightDecaySweep).toEqual({ values: [0, 1e-4], heldOutFraction: 0.1, methods: ['activation'] });
    expect(config.training.activation.optimiser.kind).toBe('sgd');
  });

  it('leave the defaults alone when not given', async () => {
    const config = await resolveRunFlags(base);
    expect(config.weightDecaySweep).toBeUndefined();
    expect(config.preprocessing).toBeUndefined();
    expect(config.splits).toEqual({ train: 'train', test: 'test' });
  });

  it('override one split only', async () => {
    expect((await resolveRunFlags({ ...base, testSplit: 'val' })).splits).toEqual({ train: 'train', test: 'val' });
  });
});
