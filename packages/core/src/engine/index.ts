import { registerDefaultFiles } from '../io/file-source.js';
import { fileSystemFiles } from '../io/file-system.js';

// `@gradfeat/core/engine` in Node: the portable engine, graph fingerprints (Node's crypto) and the
// file system as the FileSource model files are read through unless one is given.
export * from '../io/file-system.js';
export * from '../ir/fingerprint.js';
export * from './portable.js';

registerDefaultFiles(fileSystemFiles);
