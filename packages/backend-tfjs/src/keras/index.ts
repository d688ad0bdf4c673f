export { importKerasModel, type KerasGraph, type KerasModelMetadata } from './import.js';
export { kerasModelFormat, registerKerasModelFormat } from './model-format.js';
