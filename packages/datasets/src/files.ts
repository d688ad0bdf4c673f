import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type FileContents, isPathInside, writeFileAtomic as writeCoreFileAtomic } from '@gradfeat/core';
import { DatasetFileError, fileSystemError } from './errors.js';

/** Whether `path` is a directory (false when it does not exist). */
export async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** Whether `path` is a regular file (false when it does not exist). */
export async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

/** The non-empty lines of a text file, trimmed (the devkits ship CRLF files). */
export async function readTextLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((error) => {
    throw fileSystemError(path, error);
  });
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

type EntryKind = 'directories' | 'files';

/**
 * Names of the visible entries of `directory` of one kind, in plain string order (Python's `sorted`
 * for ASCII names). Symbolic links count as what they lead to when that stays inside `root`, the
 * dataset's folder; a link leading out of it, or nowhere, is an error naming it, never skipped.
 */
export async function listEntries(directory: string, kind: EntryKind, root: string = directory): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true }).catch((error) => {
    throw fileSystemError(directory, error);
  });
  const names: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const found = entry.isSymbolicLink()
      ? await linkedKind(join(directory, entry.name), root)
      : entry.isDirectory()
        ? 'directories'
        : entry.isFile()
          ? 'files'
          : undefined;
    if (found === kind) names.push(entry.name);
  }
  return names.sort();
}

async function linkedKind(link: string, root: string): Promise<EntryKind | undefined> {
  let target: string;
  try {
    target = await realpath(link);
  } catch {
    throw new DatasetFileError(link, `is a symbolic link to ${resolve(link, '..', await readlink(link))}, which does not exist`);
  }
  const folder = await realpath(root);
  if (!isPathInside(folder, target)) {
    throw new DatasetFileError(
      link,
      `is a symbolic link to ${target}, outside the dataset folder ${root}; copy what it points to into the dataset, or link the whole dataset folder instead`,
    );
  }
  const status = await stat(target);
  return status.isDirectory() ? 'directories' : status.isFile() ? 'files' : undefined;
}

/** Whether `name` ends in one of `extensions` (lower case, with the dot), ignoring case. */
export function hasExtension(name: string, extensions: readonly string[]): boolean {
  const lower = name.toLowerCase();
  return extensions.some((extension) => lower.endsWith(extension));
}

/** Core's atomic write, with errors that name the file as the rest of this package's do. */
export async function writeFileAtomic(path: string, data: FileContents): Promise<void> {
  try {
    await writeCoreFileAtomic(path, data);
  } catch (error) {
    throw fileSystemError(path, error);
  }
}

/** The error for a line of a text file that is not what was expected: names the file, the line number and the line. */
export function lineError(path: string, lineNumber: number, line: string, expected: string): DatasetFileError {
  return new DatasetFileError(path, `line ${lineNumber}: expected ${expected}, got '${line}'`);
}
