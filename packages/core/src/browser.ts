// The engine's browser entry registers fetchFiles() as the default FileSource.
import './engine/browser.js';

export * from './portable.js';
