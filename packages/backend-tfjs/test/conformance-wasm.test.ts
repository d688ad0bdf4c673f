import { describeKernelConformance } from '../../../test-support/kernel-conformance.js';
import { describeRuleChecks } from '../../../test-support/rule-checks.js';
import { createTfjsBackend } from '../src/index.js';

// float32 throughout: 1e-4 relative leaves room for the longer sums of the transposed convs.
describeKernelConformance('tfjs-wasm', () => createTfjsBackend({ runtime: 'wasm' }), 1e-4);
describeRuleChecks('tfjs-wasm', () => createTfjsBackend({ runtime: 'wasm' }), { finiteDifference: 1e-3, adjoint: 1e-5, step: 1e-2 });
