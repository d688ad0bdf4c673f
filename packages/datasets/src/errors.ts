/** A problem with one file of a dataset: its message starts with the path so the user can find it. */
export class DatasetFileError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
    options?: ErrorOptions,
  ) {
    super(`${path}: ${problem}`, options);
    this.name = 'DatasetFileError';
  }
}

/** Rethrows a filesystem error for `path` as a DatasetFileError saying what was wrong in words. */
export function fileSystemError(path: string, error: unknown): DatasetFileError {
  const code = (error as NodeJS.ErrnoException).code;
  const problem =
    code === 'ENOENT'
      ? 'file not found'
      : code === 'EISDIR'
        ? 'is a directory, expected a file'
        : code === 'EACCES'
          ? 'permission denied'
          : (error as Error).message;
  return new DatasetFileError(path, problem, { cause: error });
}
