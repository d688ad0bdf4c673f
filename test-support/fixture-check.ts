import { type Backend, checkJvpFixture } from '@gradfeat/core';
import { expect, it } from 'vitest';
import { describeWithShared, sharedPath } from './shared.js';

/** The fixture tensors issue #2's acceptance names: each must be compared. */
export const ACCEPTANCE_TENSORS = [
  'features',
  'jvp_features',
  'jvp_logits',
  'full_logits',
  'loss',
  'grad.w1',
  'grad.b1',
  'grad.dir.conv1.weight',
  'grad.dir.conv1.bias',
  'grad.dir.conv2.weight',
  'grad.dir.conv2.bias',
] as const;

/**
 * The acceptance check of the PyTorch fixture (functorch.jvp, float64): every tensor — features,
 * tangents, logits, loss and the gradients w.r.t. w1 and w2 — within 1e-4 relative error.
 */
export function describeFixtureCheck(backendName: string, makeBackend: () => Promise<Backend> | Backend, tolerance = 1e-4): void {
  describeWithShared(`PyTorch JVP fixture on ${backendName}`, () => {
    it(`matches every fixture tensor within ${tolerance} relative error`, async () => {
      const report = await checkJvpFixture(sharedPath('fixtures', 'resnet20-jvp'), await makeBackend(), tolerance);
      expect(report.comparisons.map((c) => c.tensor)).toEqual(expect.arrayContaining([...ACCEPTANCE_TENSORS]));
      for (const comparison of report.comparisons) {
        expect(comparison.relativeError, `${comparison.tensor}: max abs ${comparison.absoluteError}`).toBeLessThanOrEqual(tolerance);
      }
    });
  });
}
