export {
  createOnnxBackend,
  createOnnxBackendFromEnvironment,
  type OnnxBackend,
  type OnnxBackendOptions,
  type OnnxExecutionProvider,
  PROVIDERS_ENV_VAR,
} from './backend.js';
export { type SavedOnnxModel, type SaveOnnxOptions, saveProgramAsOnnx } from './export.js';
export { type OnnxModelSession, openOnnxModelSession } from './session.js';
export { type TracedProgram, type TraceOptions, traceProgram } from './trace.js';
