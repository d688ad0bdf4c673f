import { describeRuleChecks } from '../../../test-support/rule-checks.js';
import { createReferenceBackend } from '../src/index.js';

// Float64 inside the program: away from kinks the central differences of these piecewise (bi)linear
// ops are exact up to ~1e-13, so what remains is rounding the downloaded results to float32
// (≈ 6e-8 relative). 1e-6 leaves room for that and nothing else.
describeRuleChecks('the float64 reference backend', async () => createReferenceBackend(), {
  finiteDifference: 1e-6,
  adjoint: 1e-6,
  step: 1e-3,
});
