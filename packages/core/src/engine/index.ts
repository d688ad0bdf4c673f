/**
 * `@gradfeat/core/engine`: what a backend or model-format author needs and nothing of the
 * application layer. The IR and its transforms, the op rules and interpreters, the backend contract
 * (`Backend`, `SignedProgram`, `eagerBackend`) with the float64 reference backend, tensors and
 * kernels, the batch runner, model formats with their `FileSource`s and the plugin registry; in Node
 * also graph fingerprints, and the file system as the `FileSource` model files are read through
 * unless one is given (a browser's entry fetches them). `@gradfeat/core` exports all of it too.
 *
 * @module
 */
import { registerDefaultFiles } from '../io/file-source.js';
import { fileSystemFiles } from '../io/file-system.js';

export * from '../io/file-system.js';
export * from '../ir/fingerprint.js';
export * from './portable.js';

registerDefaultFiles(fileSystemFiles);
