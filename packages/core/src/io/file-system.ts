import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileInside, readContainedFile } from './contained-file.js';
import { FileNotFoundError, type FileSource } from './file-source.js';

/**
 * The local file system as a FileSource: paths are file paths, relative ones taken from the working
 * directory; files beside a model must be regular files inside its folder (see `fileInside`).
 */
export const fileSystemFiles: FileSource = {
  async read(path) {
    try {
      return await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new FileNotFoundError(path, { cause: error });
      throw error;
    }
  },
  async isDirectory(path) {
    try {
      return (await stat(path)).isDirectory();
    } catch {
      return false;
    }
  },
  async beside(modelFile, name, names) {
    const file = await fileInside(dirname(modelFile), name, names);
    return { ...file, read: () => readContainedFile(file) };
  },
};
