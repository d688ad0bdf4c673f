import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** File contents: text (UTF-8), bytes, or chunks of bytes written in order (large tensors need no concatenation). */
export type FileContents = string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

const TEMP_PATTERN = /^\.(.+)\.[0-9a-f]{12}\.tmp$/;

/**
 * If `fileName` is a temp file that an interrupted `writeFileAtomic` left behind, the name of the
 * file it was writing; else undefined. Lets owners of a directory sweep such leftovers.
 */
export function atomicTempTarget(fileName: string): string | undefined {
  return TEMP_PATTERN.exec(fileName)?.[1];
}

/**
 * Replaces `path` with `data` so that readers, and the file after a crash, hold either the old or
 * the new contents, never a mix: the data goes to a temp file in the same directory (rename is only
 * atomic within a file system), is flushed to disk, then renamed over `path`. On failure the temp
 * file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, data: FileContents): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    // writeFile continues at the current position, so chunks land one after another.
    if (typeof data === 'string' || data instanceof Uint8Array) await handle.writeFile(data);
    else for await (const chunk of data) await handle.writeFile(chunk);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Writes `value` as indented JSON, atomically (see `writeFileAtomic`). */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Makes the rename itself durable. Windows cannot open a directory for syncing; NTFS journals renames anyway. */
async function syncDirectory(directory: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
