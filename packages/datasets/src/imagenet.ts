import { basename, join } from 'node:path';
import { DatasetFileError } from './errors.js';
import { fileDataset } from './file-dataset.js';
import { hasExtension, isDirectory, isFile, lineError, listEntries, readTextLines } from './files.js';
import { IMAGE_EXTENSIONS, listClassFolders } from './folder.js';
import type { ImageDataset } from './types.js';

/** The ImageNet splits. */
export type ImageNetSplit = 'train' | 'val';

/** Files listing the class synsets (first token of each line is a wnid), searched in this order. */
const SYNSET_LISTS = ['LOC_synset_mapping.txt', 'synset_words.txt', 'synsets.txt'];
const DEVKIT_DATA = join('ILSVRC2012_devkit_t12', 'data');
const WNID = /^n\d{8}$/;

/**
 * ILSVRC-2012. `root/train/<wnid>/*.JPEG`; `root/val/` either as class folders or flat
 * (`ILSVRC2012_val_00000001.JPEG` …) with one of these label files in root, root/val or
 * root/ILSVRC2012_devkit_t12/data:
 * - `LOC_val_solution.csv` (Kaggle): `ImageId,PredictionString`, the first wnid of each row is the label;
 * - `imagenet_2012_validation_synset_labels.txt`: line i is the wnid of validation image i;
 * - `ILSVRC2012_validation_ground_truth.txt` (devkit): line i is image i's 1-based ILSVRC2012_ID, with
 *   `ILSVRC2012_mapping.txt` (lines `<ILSVRC2012_ID> <wnid>`, the text form of the devkit's meta.mat)
 *   to turn IDs into wnids. The IDs are not in sorted-wnid order, so a sorted synset list cannot map them.
 * Class index order is the standard sorted-wnid order, over the wnids of LOC_synset_mapping.txt,
 * synset_words.txt or synsets.txt in root when present, otherwise the train (else val) class folders.
 */
export async function openImageNet(root: string, options: { readonly split?: ImageNetSplit } = {}): Promise<ImageDataset> {
  const split = options.split ?? 'train';
  if (split !== 'train' && split !== 'val') throw new Error(`ImageNet splits are 'train' and 'val', not '${split}'`);
  const folder = join(root, split);
  if (!(await isDirectory(folder))) throw new DatasetFileError(folder, `not found (expected the ImageNet ${split} folder)`);
  const classNames = await imageNetClasses(root);
  const description = `ImageNet ${split} (${root})`;
  const classFolders = await listEntries(folder, 'directories', root);
  if (classFolders.length > 0) {
    const unknown = classFolders.filter((name) => !classNames.includes(name));
    if (unknown.length > 0) {
      throw new DatasetFileError(
        folder,
        `class folder(s) ${unknown.slice(0, 5).join(', ')} are not among the ${classNames.length} classes`,
      );
    }
    const { paths, labels } = await listClassFolders(folder, classNames, IMAGE_EXTENSIONS, root);
    return fileDataset(description, classNames, paths, { kind: 'single-label', classCount: classNames.length, labels });
  }
  const files = (await listEntries(folder, 'files', root)).filter((name) => hasExtension(name, IMAGE_EXTENSIONS));
  const wnidOf = await validationLabels(root);
  const classIndex = new Map(classNames.map((name, i) => [name, i]));
  const labels = Int32Array.from(files, (file) => {
    const wnid = wnidOf(file);
    const label = classIndex.get(wnid);
    if (label === undefined)
      throw new DatasetFileError(join(folder, file), `labelled ${wnid}, which is not among the ${classNames.length} classes`);
    return label;
  });
  const paths = files.map((file) => join(folder, file));
  return fileDataset(description, classNames, paths, { kind: 'single-label', classCount: classNames.length, labels });
}

async function imageNetClasses(root: string): Promise<string[]> {
  for (const name of SYNSET_LISTS) {
    const path = join(root, name);
    if (!(await isFile(path))) continue;
    const wnids = (await readTextLines(path)).map((line, i) => {
      const wnid = line.split(/\s+/)[0];
      if (!WNID.test(wnid)) throw lineError(path, i + 1, line, "a wnid ('n' and 8 digits) first");
      return wnid;
    });
    return wnids.sort();
  }
  for (const split of ['train', 'val']) {
    const folder = join(root, split);
    if (!(await isDirectory(folder))) continue;
    const wnids = await listEntries(folder, 'directories', root);
    if (wnids.length > 0) return wnids;
  }
  throw new DatasetFileError(root, `cannot tell the classes: no ${SYNSET_LISTS.join(' / ')} and no class folders in train/ or val/`);
}

/** Where the flat validation folder's labels come from: a function from image file name to wnid. */
async function validationLabels(root: string): Promise<(file: string) => string> {
  const find = async (name: string): Promise<string | undefined> => {
    for (const directory of [root, join(root, 'val'), join(root, DEVKIT_DATA)]) {
      if (await isFile(join(directory, name))) return join(directory, name);
    }
    return undefined;
  };
  const kaggle = await find('LOC_val_solution.csv');
  if (kaggle) {
    const byImage = new Map<string, string>();
    for (const [i, line] of (await readTextLines(kaggle)).entries()) {
      if (i === 0 && line.startsWith('ImageId')) continue;
      const match = /^([^,]+),\s*(n\d{8})/.exec(line);
      if (!match) throw lineError(kaggle, i + 1, line, "'<ImageId>,<wnid> …'");
      byImage.set(match[1], match[2]);
    }
    return (file) => lookUp(byImage.get(stem(file)), kaggle, file);
  }
  const synsetLabels = await find('imagenet_2012_validation_synset_labels.txt');
  if (synsetLabels) {
    const wnids = await readTextLines(synsetLabels);
    wnids.forEach((wnid, i) => {
      if (!WNID.test(wnid)) throw lineError(synsetLabels, i + 1, wnid, 'a wnid');
    });
    return (file) => lookUp(wnids[validationNumber(file) - 1], synsetLabels, file);
  }
  const groundTruth = await find('ILSVRC2012_validation_ground_truth.txt');
  const mapping = await find('ILSVRC2012_mapping.txt');
  if (groundTruth && mapping) {
    const wnidOfId = new Map<number, string>();
    for (const [i, line] of (await readTextLines(mapping)).entries()) {
      const match = /^(\d+)\s+(n\d{8})$/.exec(line);
      if (!match) throw lineError(mapping, i + 1, line, "'<ILSVRC2012_ID> <wnid>'");
      wnidOfId.set(Number(match[1]), match[2]);
    }
    const ids = (await readTextLines(groundTruth)).map((line, i) => {
      const id = Number(line);
      if (!Number.isInteger(id) || !wnidOfId.has(id)) throw lineError(groundTruth, i + 1, line, `an ILSVRC2012_ID listed in ${mapping}`);
      return id;
    });
    return (file) => lookUp(wnidOfId.get(ids[validationNumber(file) - 1]), groundTruth, file);
  }
  throw new DatasetFileError(
    join(root, 'val'),
    'is flat (no class folders) and no labels were found for it: expected LOC_val_solution.csv, imagenet_2012_validation_synset_labels.txt, ' +
      `or ILSVRC2012_validation_ground_truth.txt with ILSVRC2012_mapping.txt${groundTruth ? ` (found ${groundTruth} but no ILSVRC2012_mapping.txt)` : ''}`,
  );
}

function stem(file: string): string {
  return basename(file).replace(/\.[^.]*$/, '');
}

/** The 1-based number in `ILSVRC2012_val_00000042.JPEG`. */
function validationNumber(file: string): number {
  const match = /_(\d{8})$/.exec(stem(file));
  if (!match) throw new Error(`validation image ${file} is not named ILSVRC2012_val_<8 digits>, so its line in the label file is unknown`);
  return Number(match[1]);
}

function lookUp(wnid: string | undefined, labelFile: string, file: string): string {
  if (wnid === undefined) throw new DatasetFileError(labelFile, `has no label for validation image ${file}`);
  return wnid;
}
