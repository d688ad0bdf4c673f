export { importKerasModel, type KerasGraph, type KerasModelMetadata } from './import.js';
export { kerasModelFormat, kerasPlugin } from './model-format.js';
