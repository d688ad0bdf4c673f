// @gradfeat/backend-onnx/web: the ONNX Runtime backend for browsers, on onnxruntime-web, and the
// tracer that turns a program into a standalone ONNX model (e.g. a trained model to download).
import { registerPlugin } from '@gradfeat/core/engine';
import { onnxWebPlugin } from './backend.js';

export { CLASS_NAMES_KEY, PREPROCESSING_KEY } from '../import/metadata.js';
export { type TracedProgram, type TraceOptions, traceProgram } from '../runtime/trace.js';
export {
  cpuOnlyNodes,
  createOnnxWebBackend,
  type OnnxWebBackend,
  type OnnxWebBackendOptions,
  type OnnxWebExecutionProvider,
  onnxWebBackendPlugin,
  onnxWebPlugin,
} from './backend.js';

// Importing the entry makes onnxruntime-web a backend `resolveBackend()` can pick, as importing
// @gradfeat/backend-onnx does for onnxruntime-node (registering a plugin twice changes nothing; ONNX Runtime loads on first use).
registerPlugin(onnxWebPlugin);
