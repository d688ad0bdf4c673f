import { describeFeedChecks } from '../../../test-support/feed-checks.js';
import { describeKernelConformance } from '../../../test-support/kernel-conformance.js';
import { describeRuleChecks } from '../../../test-support/rule-checks.js';
import { createTfjsBackend } from '../src/index.js';

const tolerances = { finiteDifference: 1e-3, adjoint: 1e-5, step: 1e-2 };

describeKernelConformance('tfjs-cpu', () => createTfjsBackend({ runtime: 'cpu' }), 1e-4);
describeRuleChecks('tfjs-cpu', () => createTfjsBackend({ runtime: 'cpu' }), tolerances);
// The native backprop path is what tfjs-node takes; cpu has the same kernels, so it is checked here.
describeKernelConformance(
  'tfjs-cpu with native conv backprops',
  () => createTfjsBackend({ runtime: 'cpu', nativeConvBackprop: true }),
  1e-4,
);
describeFeedChecks('tfjs-cpu', () => createTfjsBackend({ runtime: 'cpu' }));
