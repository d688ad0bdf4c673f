import { open, realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { FileInsideNames } from './file-source.js';

/** A regular file inside a folder, as `fileInside` found it. */
export interface ContainedFile {
  readonly path: string;
  readonly bytes: number;
}

/**
 * Resolves `name`, a path that a manifest gives relative to `folder`. Anything that would read
 * outside the folder (`..`, an absolute path, a symbolic link leading out) is refused without being
 * opened, so neither its contents nor its size leak; so is anything but a regular file (a FIFO blocks
 * for ever, a device reads without end). The caller compares `bytes` with what the manifest expects
 * before reading the file with `readContainedFile`.
 */
export async function fileInside(folder: string, name: string, names: FileInsideNames): Promise<ContainedFile> {
  const root = resolve(folder);
  const path = resolve(root, name);
  const leaves = () => new Error(`${names.what} '${name}' leaves ${names.folder} (${root}); only files inside it are read`);
  if (!isPathInside(root, path)) throw leaves();
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${names.what} '${path}' is missing`, { cause: error });
    throw new Error(`${names.what} '${path}' cannot be read (${(error as Error).message})`, { cause: error });
  }
  if (!isPathInside(await realpath(root), real)) throw leaves();
  const status = await stat(real);
  if (!status.isFile()) throw new Error(`${names.what} '${path}' is not a regular file`);
  return { path: real, bytes: status.size };
}

/** Reads exactly the `bytes` that `fileInside` saw, so a file that grows meanwhile is not read without bound. */
export async function readContainedFile(file: ContainedFile): Promise<Buffer> {
  const buffer = Buffer.alloc(file.bytes);
  const handle = await open(file.path, 'r');
  try {
    let done = 0;
    while (done < file.bytes) {
      const { bytesRead } = await handle.read(buffer, done, file.bytes - done, done);
      if (bytesRead === 0) throw new Error(`'${file.path}' shrank from ${file.bytes} to ${done} bytes while it was read`);
      done += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}

/** Whether `path` lies strictly inside `folder` (both absolute and normalised, e.g. by resolve or realpath). */
export function isPathInside(folder: string, path: string): boolean {
  const rest = relative(folder, path);
  return rest !== '' && rest !== '..' && !rest.startsWith(`..${sep}`) && !isAbsolute(rest);
}
