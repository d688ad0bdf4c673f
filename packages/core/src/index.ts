import { registerDefaultFiles } from './io/file-source.js';
import { fileSystemFiles } from './io/file-system.js';

export * from './fixtures/jvp-fixture.js';
export * from './io/atomic.js';
export * from './io/checkpoint.js';
export * from './io/contained-file.js';
export * from './io/directory-lock.js';
export * from './io/feature-cache-files.js';
export * from './io/file-system.js';
export * from './io/run-directory.js';
export * from './ir/fingerprint.js';
export * from './portable.js';

// In Node, model files are read from the file system unless a FileSource is given.
registerDefaultFiles(fileSystemFiles);
