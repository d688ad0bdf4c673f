import { resolve } from 'node:path';
import { definePluginSlot } from '@gradfeat/core';
import type { ImageDataset } from './types.js';

/**
 * How the PATH of a `KIND:PATH` dataset spec is read, for one KIND: what a plugin lists in
 * `datasetFormats`. The built-in ones (cifar10, cifar100, folder, voc2007, imagenet) are `datasetsPlugin`.
 */
export interface DatasetFormat {
  /** The KIND of `KIND:PATH`, e.g. 'cifar10'; it cannot contain ':'. */
  readonly name: string;
  /** What PATH is, for help and errors, e.g. 'a folder of class folders'. */
  readonly describes: string;
  /** The split names it accepts; absent: any (e.g. a folder's sub-folders). */
  readonly splits?: readonly string[];
  /** Opens one split (a name from `splits`); nothing is decoded yet. */
  open(path: string, split: string): Promise<ImageDataset>;
  /**
   * Where a split's images are read from: two splits with the same location are the same images (a
   * run refuses to test on its training images). Default: `separateSplitLocation`.
   */
  splitLocation?(path: string, split: string): Promise<string>;
}

declare module '@gradfeat/core' {
  interface GradfeatPlugin {
    /** Dataset formats: each is a KIND of `KIND:PATH` dataset specs (declared by `@gradfeat/datasets`). */
    readonly datasetFormats?: readonly DatasetFormat[];
  }
}

/** The `datasetFormats` of plugins. */
export const DATASET_FORMATS = definePluginSlot<DatasetFormat>('datasetFormats', 'dataset format', {
  describes: 'string',
  open: 'function',
});

/** The location of a split stored apart from the others: `<absolute PATH> (<split>)`. */
export function separateSplitLocation(path: string, split: string): string {
  return `${resolve(path)} (${split})`;
}
