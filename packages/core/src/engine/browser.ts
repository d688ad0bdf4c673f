import { fetchFiles, registerDefaultFiles } from '../io/file-source.js';

// `@gradfeat/core/engine` in a browser (its `browser` export condition, and `@gradfeat/core/engine/browser`).
export * from './portable.js';

// Model files are fetched (relative paths from the page's, or the worker's, address).
registerDefaultFiles(fetchFiles());
