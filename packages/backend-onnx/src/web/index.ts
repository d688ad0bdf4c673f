// @gradfeat/backend-onnx/web: the ONNX Runtime backend for browsers, on onnxruntime-web, and the
// tracer that turns a program into a standalone ONNX model (e.g. a trained model to download).

export { type TracedProgram, type TraceOptions, traceProgram } from '../runtime/trace.js';
export {
  cpuOnlyNodes,
  createOnnxWebBackend,
  type OnnxWebBackend,
  type OnnxWebBackendOptions,
  type OnnxWebExecutionProvider,
  onnxWebBackendPlugin,
  registerOnnxWebBackend,
} from './backend.js';
