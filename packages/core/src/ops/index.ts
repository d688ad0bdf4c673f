// Importing this module registers every op's rules.
export * from './activations.js';
export * from './parametric.js';
export * from './pooling.js';
export * from './rule.js';
export * from './structural.js';
