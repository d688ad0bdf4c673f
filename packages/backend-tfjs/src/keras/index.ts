export { importKerasModel, type KerasGraph, type KerasModelMetadata } from './import.js';
