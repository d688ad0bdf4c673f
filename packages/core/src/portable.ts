// Everything in @gradfeat/core that runs without Node: the engine (engine/portable.ts) and the
// application layer on it. browser.ts (the package's `browser` export condition, and
// `@gradfeat/core/browser`) is this; index.ts adds the modules that use the file system and Node's
// crypto: atomic writes, checkpoints, run directories and their locks, feature cache files,
// contained-file reads, the PyTorch fixture check, graph fingerprints and the file-system FileSource.

export * from './bench/workloads.js';
export * from './engine/portable.js';
export * from './experiments/transfer-demo.js';
export * from './methods/compare.js';
export * from './methods/finetuned.js';
export * from './methods/linearised-model.js';
export * from './methods/programs.js';
export * from './metrics/classification.js';
export * from './networks/builder.js';
export * from './networks/mobilenet.js';
export * from './networks/resnet.js';
export * from './networks/small-cnn.js';
export * from './plugin.js';
export * from './report/loss-curves.js';
export * from './report/markdown.js';
export * from './train/divergence.js';
export * from './train/gradient-sums.js';
export * from './train/lbfgs.js';
export * from './train/losses.js';
export * from './train/optimisers.js';
export * from './train/settings.js';
export * from './train/trainer.js';
