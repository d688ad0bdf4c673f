import { readdir, readFile, stat } from 'node:fs/promises';
import { type FileContents, writeFileAtomic as writeCoreFileAtomic } from '@gradfeat/core';
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

/** Names of the visible entries of `directory` of one kind, in plain string order (Python's `sorted` for ASCII names). */
export async function listEntries(directory: string, kind: 'directories' | 'files'): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true }).catch((error) => {
    throw fileSystemError(directory, error);
  });
  return entries
    .filter((entry) => !entry.name.startsWith('.') && (kind === 'directories' ? entry.isDirectory() : entry.isFile()))
    .map((entry) => entry.name)
    .sort();
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
