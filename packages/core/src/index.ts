export * from './browser.js';
export * from './fixtures/jvp-fixture.js';
export * from './io/atomic.js';
export * from './io/checkpoint.js';
export * from './io/file-system.js';
export * from './io/run-directory.js';
export * from './ir/fingerprint.js';
