import { targetAt, targetCount } from './targets.js';
import type { DatasetSample, ImageDataset, ImageRef, Targets } from './types.js';

/** A dataset whose samples are encoded image files listed up front (folders, VOC, ImageNet). */
export function fileDataset(description: string, classNames: readonly string[], paths: readonly string[], targets: Targets): ImageDataset {
  if (targetCount(targets) !== paths.length) {
    throw new Error(`${description}: ${paths.length} images but ${targetCount(targets)} targets`);
  }
  return {
    description,
    length: paths.length,
    classNames,
    labelKind: targets.kind,
    async images(indices) {
      return indices.map((index): ImageRef => ({ path: paths[checkIndex(description, index, paths.length)] }));
    },
    async targets() {
      return targets;
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<DatasetSample> {
      for (let index = 0; index < paths.length; index++) {
        yield { index, image: { path: paths[index] }, target: targetAt(targets, index) };
      }
    },
  };
}

/** Returns `index`, or throws a RangeError naming the dataset when it is out of range. */
export function checkIndex(description: string, index: number, length: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= length) {
    throw new RangeError(`${description}: sample index ${index} is outside 0..${length - 1}`);
  }
  return index;
}
