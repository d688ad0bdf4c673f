// The engine of @gradfeat/core, everything of it that runs without Node: the IR, its transforms, the
// op rules, the interpreters (evaluate, jvp, backward), the backend contract with the reference
// backend, tensors and kernels, the batch runner, model formats and the plugin registry. What a
// backend or model-format author needs, and nothing of the application layer (the paper's methods,
// training, run directories, checkpoints, reports, benchmarks), which imports the engine and never
// the other way round (test/layers.test.ts). `@gradfeat/core/engine` is this, plus the platform's
// default FileSource (engine/index.ts in Node, engine/browser.ts in a browser).
export * from '../backend/backend.js';
export * from '../backend/batch-program.js';
export * from '../backend/kernels.js';
export * from '../backend/reference.js';
export * from '../backend/registry.js';
export * from '../backend/storage-order.js';
export * from '../data/source.js';
export * from '../io/file-source.js';
export * from '../io/model-formats.js';
export * from '../ir/cost.js';
export * from '../ir/graph.js';
export * from '../ir/shapes.js';
export * from '../ir/summary.js';
export * from '../ops/index.js';
export * from '../plugins/registry.js';
export * from '../random.js';
export * from '../tensor.js';
export * from '../transforms/classifier.js';
export * from '../transforms/cut.js';
export * from '../transforms/fold-batchnorm.js';
export * from '../transforms/reinitialise.js';
export * from '../transforms/reparametrise.js';
export * from './interpreter.js';
