import { join } from 'node:path';
import { DatasetFileError } from './errors.js';
import { fileDataset } from './file-dataset.js';
import { hasExtension, isDirectory, listEntries } from './files.js';
import type { ImageDataset } from './types.js';

/** The file extensions read as images. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

/** Options of `openImageFolder`. */
export interface ImageFolderOptions {
  /** File extensions read as images, lower case with the dot. Default .jpg, .jpeg, .png (any case). */
  readonly extensions?: readonly string[];
}

/**
 * `root/<class>/*.{jpg,jpeg,png}`: classes are the sorted sub-folder names, each class's files sorted.
 * A class folder without images keeps its index (so a split missing a class still agrees with the others).
 */
export async function openImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageDataset> {
  if (!(await isDirectory(root))) throw new DatasetFileError(root, 'not found (expected a folder of class folders)');
  const classNames = await listEntries(root, 'directories');
  if (classNames.length === 0) throw new DatasetFileError(root, 'has no class folders (expected root/<class>/<image>)');
  const { paths, labels } = await listClassFolders(root, classNames, options.extensions ?? IMAGE_EXTENSIONS);
  return fileDataset(`image folder ${root}`, classNames, paths, { kind: 'single-label', classCount: classNames.length, labels });
}

/**
 * The image files under `root/<class>/` for each of `classNames` (missing folders count as empty), labelled by position.
 * Symbolic links must stay inside `datasetRoot` (default `root`).
 */
export async function listClassFolders(
  root: string,
  classNames: readonly string[],
  extensions: readonly string[],
  datasetRoot: string = root,
): Promise<{ paths: string[]; labels: Int32Array }> {
  const paths: string[] = [];
  const labels: number[] = [];
  for (const [label, name] of classNames.entries()) {
    const folder = join(root, name);
    if (!(await isDirectory(folder))) continue;
    for (const file of await listEntries(folder, 'files', datasetRoot)) {
      if (!hasExtension(file, extensions)) continue;
      paths.push(join(folder, file));
      labels.push(label);
    }
  }
  return { paths, labels: Int32Array.from(labels) };
}

/** Every image file under `folder` and its sub-folders, sorted within each folder. */
export async function imageFilesUnder(folder: string, extensions: readonly string[] = IMAGE_EXTENSIONS): Promise<string[]> {
  const files = (await listEntries(folder, 'files')).filter((file) => hasExtension(file, extensions));
  const nested = await Promise.all((await listEntries(folder, 'directories')).map((sub) => imageFilesUnder(join(folder, sub), extensions)));
  return [...files.map((file) => join(folder, file)), ...nested.flat()];
}

/**
 * The folder holding `split` under `root`: `root/<split>` when that is a folder of class folders
 * (like the CIFAR-10 JPEG archive's train/ and test/), otherwise `root` itself.
 */
export async function folderForSplit(root: string, split: string): Promise<string> {
  const candidate = join(root, split);
  if (!(await isDirectory(candidate))) return root;
  const holdsImages = (await listEntries(candidate, 'files', root)).some((file) => hasExtension(file, IMAGE_EXTENSIONS));
  const holdsFolders = (await listEntries(candidate, 'directories', root)).length > 0;
  return holdsFolders && !holdsImages ? candidate : root;
}
