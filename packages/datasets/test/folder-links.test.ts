import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetFileError } from '../src/errors.js';
import { openImageFolder } from '../src/folder.js';
import { datasetInfo } from '../src/spec.js';
import { encodePng, patternImage, temporaryDirectory } from './helpers.js';

describe('image folders with symbolic links and empty classes', () => {
  let root: string;
  let remove: () => Promise<void>;
  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
  });
  afterAll(() => remove());

  /** dataset/cat/a.png, dataset/dog/b.png, dataset/empty/ and an image outside the dataset. */
  async function dataset(name: string): Promise<string> {
    const base = join(root, name);
    for (const folder of ['cat', 'dog', 'empty']) await mkdir(join(base, 'dataset', folder), { recursive: true });
    await writeFile(join(base, 'dataset', 'cat', 'a.png'), encodePng(patternImage(4, 4)));
    await writeFile(join(base, 'dataset', 'dog', 'b.png'), encodePng(patternImage(4, 4, 1)));
    await writeFile(join(base, 'outside.png'), encodePng(patternImage(4, 4, 2)));
    return join(base, 'dataset');
  }

  it('follows links to images and class folders that stay inside the dataset folder', async () => {
    const folder = await dataset('inside');
    await symlink(join(folder, 'cat', 'a.png'), join(folder, 'dog', 'c.png'));
    await symlink('cat', join(folder, 'kitten'));
    const opened = await openImageFolder(folder);
    expect(opened.classNames).toEqual(['cat', 'dog', 'empty', 'kitten']);
    const paths = (await opened.images([0, 1, 2, 3])).map((ref) => ('path' in ref ? ref.path : ''));
    expect(paths).toEqual([
      join(folder, 'cat', 'a.png'),
      join(folder, 'dog', 'b.png'),
      join(folder, 'dog', 'c.png'),
      join(folder, 'kitten', 'a.png'),
    ]);
  });

  it('refuses by name a link that leads out of the dataset folder, or nowhere, instead of skipping it', async () => {
    const folder = await dataset('outside');
    await symlink(join(folder, '..', 'outside.png'), join(folder, 'cat', 'escape.png'));
    const error = await openImageFolder(folder).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetFileError);
    expect((error as DatasetFileError).path).toBe(join(folder, 'cat', 'escape.png'));
    expect((error as Error).message).toMatch(/is a symbolic link to .*outside\.png, outside the dataset folder/);

    const classes = await dataset('outside-class');
    await symlink(join(classes, '..'), join(classes, 'parent'));
    await expect(openImageFolder(classes)).rejects.toThrow(`${join(classes, 'parent')}: is a symbolic link to`);

    const dangling = await dataset('dangling');
    await symlink(join(dangling, 'nowhere.png'), join(dangling, 'cat', 'gone.png'));
    await expect(openImageFolder(dangling)).rejects.toThrow(
      `${join(dangling, 'cat', 'gone.png')}: is a symbolic link to ${join(dangling, 'nowhere.png')}, which does not exist`,
    );
  });

  it('counts images per class and warns about classes without any', async () => {
    const folder = await dataset('counts');
    const info = await datasetInfo(`folder:${folder}`, 'train');
    expect(info.perClassCounts).toEqual([1, 1, 0]);
    expect(info.warnings).toEqual([`class 'empty' has no images in image folder ${folder}`]);
  });
});
