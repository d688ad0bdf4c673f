import { fetchFiles, registerDefaultFiles } from './io/file-source.js';

export * from './portable.js';

// In a browser, model files are fetched (relative paths from the page's, or the worker's, address).
registerDefaultFiles(fetchFiles());
