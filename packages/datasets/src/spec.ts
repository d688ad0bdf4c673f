import { resolve } from 'node:path';
import { openCifar } from './cifar.js';
import { isFile } from './files.js';
import { folderForSplit, openImageFolder } from './folder.js';
import { openImageNet } from './imagenet.js';
import { emptyClassWarnings, perClassCounts } from './targets.js';
import type { ImageDataset, LabelKind } from './types.js';
import { openVoc2007, VOC_SPLITS, type VocSplit } from './voc.js';

/** The dataset kinds of a KIND:PATH spec. */
export const DATASET_KINDS = ['cifar10', 'cifar100', 'folder', 'voc2007', 'imagenet'] as const;
/** One of `DATASET_KINDS`. */
export type DatasetKind = (typeof DATASET_KINDS)[number];

/** A parsed KIND:PATH dataset spec. */
export interface DatasetSpec {
  readonly kind: DatasetKind;
  readonly path: string;
}

/** Splits each kind accepts; 'folder' accepts any name (see openDataset). */
const SPLITS: Readonly<Record<Exclude<DatasetKind, 'folder'>, readonly string[]>> = {
  cifar10: ['train', 'test'],
  cifar100: ['train', 'test'],
  voc2007: VOC_SPLITS,
  imagenet: ['train', 'val'],
};

/** Parses 'KIND:PATH', e.g. 'cifar10:/data/cifar-10-batches-bin' (only the first ':' separates). */
export function parseDatasetSpec(text: string): DatasetSpec {
  const colon = text.indexOf(':');
  const kind = text.slice(0, colon);
  const path = text.slice(colon + 1);
  if (colon < 0 || !DATASET_KINDS.includes(kind as DatasetKind)) {
    throw new Error(`dataset '${text}' should be KIND:PATH with KIND one of ${DATASET_KINDS.join(', ')}`);
  }
  if (path.length === 0) throw new Error(`dataset '${text}' has no path after '${kind}:'`);
  return { kind: kind as DatasetKind, path };
}

/**
 * Opens one split of a dataset. For 'folder', the split is the sub-folder `PATH/<split>` when that is
 * a folder of class folders (as in the CIFAR-10 JPEG archive), else PATH itself.
 */
export async function openDataset(spec: DatasetSpec | string, split: string): Promise<ImageDataset> {
  const { kind, path } = typeof spec === 'string' ? parseDatasetSpec(spec) : spec;
  if (kind === 'folder') return openImageFolder(await folderForSplit(path, split));
  if (!SPLITS[kind].includes(split)) throw new Error(`${kind} has splits ${SPLITS[kind].join(', ')}, not '${split}'`);
  switch (kind) {
    case 'cifar10':
    case 'cifar100':
      return openCifar(kind, path, { split: split as 'train' | 'test' });
    case 'voc2007':
      return openVoc2007(path, { split: split as VocSplit });
    case 'imagenet':
      return openImageNet(path, { split: split as 'train' | 'val' });
  }
}

/**
 * Where a split's images are read from: two splits with the same location are the same images. A
 * single CIFAR .bin file serves every split, and a folder without `<split>` sub-folders is every split.
 */
export async function splitLocation(spec: DatasetSpec | string, split: string): Promise<string> {
  const { kind, path } = typeof spec === 'string' ? parseDatasetSpec(spec) : spec;
  if (kind === 'folder') return resolve(await folderForSplit(path, split));
  if ((kind === 'cifar10' || kind === 'cifar100') && (await isFile(path))) return resolve(path);
  return `${resolve(path)} (${split})`;
}

/** What `datasetInfo` reports about a split. */
export interface DatasetInfo {
  readonly description: string;
  readonly count: number;
  readonly classNames: readonly string[];
  readonly labelKind: LabelKind;
  /** Images per class; for multi-label datasets, the images where the class is positive. */
  readonly perClassCounts: readonly number[];
  /** One per class without images: such a class silently gets no training signal. */
  readonly warnings: readonly string[];
}

/** Counts a split's images per class by streaming its labels (no image is decoded). */
export async function datasetInfo(spec: DatasetSpec | string, split: string): Promise<DatasetInfo> {
  const dataset = await openDataset(spec, split);
  const counts = perClassCounts(await dataset.targets());
  return {
    description: dataset.description,
    count: dataset.length,
    classNames: dataset.classNames,
    labelKind: dataset.labelKind,
    perClassCounts: counts,
    warnings: emptyClassWarnings(dataset.classNames, counts, dataset.description),
  };
}
