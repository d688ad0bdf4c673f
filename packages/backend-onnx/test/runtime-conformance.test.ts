import { describeFeedChecks } from '../../../test-support/feed-checks.js';
import { describeFixtureCheck } from '../../../test-support/fixture-check.js';
import { describeKernelConformance } from '../../../test-support/kernel-conformance.js';
import { describeRuleChecks } from '../../../test-support/rule-checks.js';
import { createOnnxBackend } from '../src/index.js';

// float32 kernels against the float64 reference: 1e-4 relative leaves room for the long sums of the conv transposes.
describeKernelConformance('onnxruntime-cpu', () => createOnnxBackend(), 1e-4);
// The rule checks compile with a symbolic batch, so they also exercise the traced shapes.
describeRuleChecks('onnxruntime-cpu', () => createOnnxBackend(), { finiteDifference: 1e-3, adjoint: 1e-5, step: 1e-2 });
describeFixtureCheck('onnxruntime-cpu', () => createOnnxBackend());
describeFeedChecks('onnxruntime-cpu', () => createOnnxBackend());
