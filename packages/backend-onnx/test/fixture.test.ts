import { describeFixtureCheck } from '../../../test-support/fixture-check.js';
import { createOnnxBackend } from '../src/index.js';

describeFixtureCheck('ONNX Runtime', () => createOnnxBackend());
