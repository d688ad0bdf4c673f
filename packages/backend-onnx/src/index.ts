export * from './import/index.js';
export * from './runtime/index.js';
export * from './model-format.js';
