import { readFile, stat } from 'node:fs/promises';
import { FileNotFoundError, type FileSource } from './file-source.js';

/** The local file system as a FileSource: paths are file paths, relative ones taken from the working directory. */
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
};
