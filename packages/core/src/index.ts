export * from './backend/backend.js';
export * from './backend/kernels.js';
export * from './backend/registry.js';
export * from './engine/interpreter.js';
export * from './ir/graph.js';
export * from './ir/shapes.js';
export * from './ops/index.js';
export * from './tensor.js';
