import { describe, expect, it } from 'vitest';
import { kernelConformanceCases, kernelsCalledBy } from '../../../test-support/kernel-conformance.js';
import { ruleCases } from '../../../test-support/rule-checks.js';
import { KERNEL_NAMES, registeredOps } from '../src/index.js';

/**
 * Driven by the registries: an op added without a rule-check case, or a kernel without a conformance
 * case, fails here instead of going untested.
 */
describe('coverage of the op and kernel registries', () => {
  it('every op with rules has a rule-check case', () => {
    const checked = new Set(ruleCases().flatMap((c) => c.graph.nodes.map((node) => node.op)));
    expect(registeredOps().filter((op) => !checked.has(op))).toEqual([]);
  });

  it('every kernel of the backend contract is called by a conformance case', async () => {
    const called = await kernelsCalledBy(kernelConformanceCases());
    expect(KERNEL_NAMES.filter((kernel) => !called.has(kernel))).toEqual([]);
  });
});
