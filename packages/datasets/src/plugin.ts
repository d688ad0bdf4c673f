import { resolve } from 'node:path';
import type { GradfeatPlugin } from '@gradfeat/core';
import { type CifarVariant, openCifar } from './cifar.js';
import { type DatasetFormat, separateSplitLocation } from './dataset-format.js';
import { isFile } from './files.js';
import { folderForSplit, openImageFolder } from './folder.js';
import { openImageNet } from './imagenet.js';
import { openVoc2007, VOC_SPLITS, type VocSplit } from './voc.js';

/** The CIFAR binary batches; a single .bin file holds every split (see the `--test-on-training-split` check). */
function cifarFormat(variant: CifarVariant): DatasetFormat {
  return {
    name: variant,
    describes: `the ${variant === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100'} binary batches (their folder, or one .bin file)`,
    splits: ['train', 'test'],
    open: (path, split) => openCifar(variant, path, { split: split as 'train' | 'test' }),
    splitLocation: async (path, split) => ((await isFile(path)) ? resolve(path) : separateSplitLocation(path, split)),
  };
}

/** An image folder: the split is `PATH/<split>` when that is a folder of class folders, else PATH itself. */
const folderFormat: DatasetFormat = {
  name: 'folder',
  describes: 'a folder of class folders of JPEG/PNG images, or of such folders per split',
  open: async (path, split) => openImageFolder(await folderForSplit(path, split)),
  splitLocation: async (path, split) => resolve(await folderForSplit(path, split)),
};

const vocFormat: DatasetFormat = {
  name: 'voc2007',
  describes: 'the PASCAL VOC 2007 devkit (VOC2007/ or a folder holding it)',
  splits: VOC_SPLITS,
  open: (path, split) => openVoc2007(path, { split: split as VocSplit }),
};

const imageNetFormat: DatasetFormat = {
  name: 'imagenet',
  describes: 'ILSVRC-2012 (train/<wnid>/ and val/, with its label files)',
  splits: ['train', 'val'],
  open: (path, split) => openImageNet(path, { split: split as 'train' | 'val' }),
};

/**
 * The dataset formats of `@gradfeat/datasets`. Importing the package registers them; `gradfeat` loads
 * them as the default export of `@gradfeat/datasets/plugin`.
 */
export const datasetsPlugin: GradfeatPlugin = {
  name: '@gradfeat/datasets',
  datasetFormats: [cifarFormat('cifar10'), cifarFormat('cifar100'), folderFormat, vocFormat, imageNetFormat],
};

export default datasetsPlugin;
