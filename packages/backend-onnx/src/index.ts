export * from './import/index.js';
export * from './runtime/index.js';
