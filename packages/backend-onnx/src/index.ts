export * from './import/index.js';
export * from './model-format.js';
export * from './runtime/index.js';
