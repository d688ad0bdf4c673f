// The engine's Node entry registers the file system as the default FileSource.
import './engine/index.js';

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
