export { createCli, main } from './cli.js';
export { EXPORT_KEY, type ExportDescription } from './export-metadata.js';
export { decodeSafetensors, encodeSafetensors, type SafetensorsFile } from './safetensors.js';
export {
  type LoadTrainedModelOptions,
  loadTrainedModel,
  type Prediction,
  type PredictionResult,
  type PredictOptions,
  predict,
  type TrainedModel,
} from './trained-model.js';
export { GRADFEAT_VERSION } from './version.js';
