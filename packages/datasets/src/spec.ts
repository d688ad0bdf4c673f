import { type DependencyContainer, NotRegisteredError, registeredEntry, registerPlugin, registrations } from '@gradfeat/core';
import { DATASET_FORMATS, type DatasetFormat, separateSplitLocation } from './dataset-format.js';
import { datasetsPlugin } from './plugin.js';
import { emptyClassWarnings, perClassCounts } from './targets.js';
import type { ImageDataset, LabelKind } from './types.js';

// Whoever opens datasets through this module can open the built-in kinds; a plugin adds more.
registerPlugin(datasetsPlugin);

/** A parsed KIND:PATH dataset spec. */
export interface DatasetSpec {
  /** A registered dataset format's name. */
  readonly kind: string;
  readonly path: string;
}

/** The registered dataset formats, in registration order (the built-in ones first). */
export function registeredDatasetFormats(container?: DependencyContainer): DatasetFormat[] {
  return registrations(DATASET_FORMATS, container).map((r) => r.entry);
}

/**
 * Parses 'KIND:PATH', e.g. 'cifar10:/data/cifar-10-batches-bin' (only the first ':' separates); KIND
 * must be a registered dataset format (a NotRegisteredError lists them otherwise).
 */
export function parseDatasetSpec(text: string, container?: DependencyContainer): DatasetSpec {
  const colon = text.indexOf(':');
  const kind = text.slice(0, colon);
  const path = text.slice(colon + 1);
  const kinds = registeredDatasetFormats(container).map((format) => format.name);
  const expected = `dataset '${text}' should be KIND:PATH with KIND one of ${kinds.join(', ')}`;
  if (colon < 0) throw new Error(expected);
  if (!kinds.includes(kind)) throw new NotRegisteredError('dataset format', kind, kinds, expected);
  if (path.length === 0) throw new Error(`dataset '${text}' has no path after '${kind}:'`);
  return { kind, path };
}

/** The format of a spec and its path. */
function resolveSpec(spec: DatasetSpec | string, container?: DependencyContainer): { format: DatasetFormat; path: string } {
  const { kind, path } = typeof spec === 'string' ? parseDatasetSpec(spec, container) : spec;
  return { format: registeredEntry(DATASET_FORMATS, kind, container), path };
}

/** Opens one split of a dataset with its format, after checking the split is one the format has. */
export async function openDataset(spec: DatasetSpec | string, split: string, container?: DependencyContainer): Promise<ImageDataset> {
  const { format, path } = resolveSpec(spec, container);
  if (format.splits && !format.splits.includes(split)) {
    throw new Error(`${format.name} has splits ${format.splits.join(', ')}, not '${split}'`);
  }
  return format.open(path, split);
}

/**
 * Where a split's images are read from: two splits with the same location are the same images (a
 * single CIFAR .bin file serves every split, and a folder without `<split>` sub-folders is every split).
 */
export async function splitLocation(spec: DatasetSpec | string, split: string, container?: DependencyContainer): Promise<string> {
  const { format, path } = resolveSpec(spec, container);
  return format.splitLocation ? format.splitLocation(path, split) : separateSplitLocation(path, split);
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
export async function datasetInfo(spec: DatasetSpec | string, split: string, container?: DependencyContainer): Promise<DatasetInfo> {
  const dataset = await openDataset(spec, split, container);
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
