import { type FileHandle, open, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DatasetFileError, fileSystemError } from './errors.js';
import { checkIndex } from './file-dataset.js';
import { isDirectory, isFile, readTextLines } from './files.js';
import type { DatasetSample, ImageDataset, ImageRef, RgbImage, Targets } from './types.js';

/** CIFAR-10 or CIFAR-100. */
export type CifarVariant = 'cifar10' | 'cifar100';
/** The CIFAR splits. */
export type CifarSplit = 'train' | 'test';

/** Which CIFAR files and labels `openCifar` reads. */
export interface CifarOptions {
  /** Which files of a directory to read; ignored when the path is a single .bin file. Default 'train'. */
  readonly split?: CifarSplit;
  /** CIFAR-100 only: the 100 fine classes (default) or the 20 coarse superclasses. */
  readonly labels?: 'fine' | 'coarse';
}

/** CIFAR-10's classes in label order. */
export const CIFAR10_CLASSES: readonly string[] = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

/** CIFAR-100's 100 fine classes in label order. */
export const CIFAR100_FINE_CLASSES: readonly string[] = (
  'apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle caterpillar ' +
  'cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl ' +
  'hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom ' +
  'oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road ' +
  'rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank ' +
  'telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm'
).split(' ');

/** CIFAR-100's 20 coarse superclasses in label order. */
export const CIFAR100_COARSE_CLASSES: readonly string[] = (
  'aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices household_furniture insects ' +
  'large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores medium_mammals ' +
  'non-insect_invertebrates people reptiles small_mammals trees vehicles_1 vehicles_2'
).split(' ');

const SIDE = 32;
const PIXELS = SIDE * SIDE;
const IMAGE_BYTES = 3 * PIXELS;
/** Records streamed per read when scanning or iterating a file (~3 MB). */
const RECORDS_PER_READ = 1024;

interface Layout {
  readonly title: string;
  /** Directory name inside the official archive. */
  readonly archiveDirectory: string;
  /** The official archive of the binary version and its MD5, as published on the CIFAR page. */
  readonly archiveUrl: string;
  readonly archiveMd5: string;
  readonly files: Readonly<Record<CifarSplit, readonly string[]>>;
  /** Label bytes before the pixels of each record. */
  readonly labelBytes: number;
}

const LAYOUTS: Readonly<Record<CifarVariant, Layout>> = {
  cifar10: {
    title: 'CIFAR-10',
    archiveDirectory: 'cifar-10-batches-bin',
    archiveUrl: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    archiveMd5: 'c32a1d4ab5d03f1284b67883e8d87530',
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    labelBytes: 1,
  },
  cifar100: {
    title: 'CIFAR-100',
    archiveDirectory: 'cifar-100-binary',
    archiveUrl: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    archiveMd5: '03b5dce01913d631647c71ecec9e9cb8',
    files: { train: ['train.bin'], test: ['test.bin'] },
    labelBytes: 2,
  },
};

/** Where the official binary archive is published, and the folder it extracts to. */
export function cifarArchive(variant: CifarVariant): { readonly url: string; readonly md5: string; readonly directory: string } {
  const layout = LAYOUTS[variant];
  return { url: layout.archiveUrl, md5: layout.archiveMd5, directory: layout.archiveDirectory };
}

interface CifarFile {
  readonly path: string;
  readonly records: number;
  /** Global index of the file's first record. */
  readonly first: number;
}

/**
 * The official CIFAR binary format: records of label byte(s) then 3,072 pixel bytes (R, G, B planes,
 * row-major 32×32). `path` is a directory (the archive's extracted folder or its parent) or one .bin file.
 */
export async function openCifar(variant: CifarVariant, path: string, options: CifarOptions = {}): Promise<ImageDataset> {
  const layout = LAYOUTS[variant];
  const split = options.split ?? 'train';
  if (!(split in layout.files)) throw new Error(`${layout.title} has splits 'train' and 'test', not '${split}'`);
  if (options.labels === 'coarse' && variant !== 'cifar100') throw new Error('coarse labels exist only in CIFAR-100');
  const paths = await dataFiles(layout, path, split);
  const recordBytes = layout.labelBytes + IMAGE_BYTES;
  const files: CifarFile[] = [];
  let total = 0;
  for (const file of paths) {
    const { size } = await stat(file).catch((error) => {
      throw fileSystemError(file, error);
    });
    if (size === 0 || size % recordBytes !== 0) {
      throw new DatasetFileError(
        file,
        `size ${size} bytes is not a whole number of ${layout.title} records (${recordBytes} bytes each): truncated or not ${layout.title}`,
      );
    }
    files.push({ path: file, records: size / recordBytes, first: total });
    total += size / recordBytes;
  }
  const labelOffset = variant === 'cifar100' && options.labels !== 'coarse' ? 1 : 0;
  const classNames = await classNamesFor(variant, options.labels ?? 'fine', dirname(paths[0]));
  const description = `${layout.title} ${split} (${paths.length === 1 ? paths[0] : dirname(paths[0])})`;
  let targets: Promise<Targets> | undefined;

  /** Streams every record of one file, reading blocks of records at a time. */
  async function* records(file: CifarFile): AsyncGenerator<{ record: number; bytes: Uint8Array }> {
    const handle = await open(file.path, 'r');
    try {
      const block = new Uint8Array(RECORDS_PER_READ * recordBytes);
      for (let start = 0; start < file.records; start += RECORDS_PER_READ) {
        const count = Math.min(RECORDS_PER_READ, file.records - start);
        await readExactly(handle, file.path, block.subarray(0, count * recordBytes), start * recordBytes);
        for (let r = 0; r < count; r++) {
          yield { record: start + r, bytes: block.subarray(r * recordBytes, (r + 1) * recordBytes) };
        }
      }
    } finally {
      await handle.close();
    }
  }

  function labelOf(file: CifarFile, record: number, bytes: Uint8Array): number {
    const label = bytes[labelOffset];
    if (label >= classNames.length) {
      throw new DatasetFileError(
        file.path,
        `record ${record} has label ${label}, but there are ${classNames.length} classes: not ${layout.title}?`,
      );
    }
    return label;
  }

  return {
    description,
    length: total,
    classNames,
    labelKind: 'single-label',
    images: async (indices) => {
      for (const index of indices) checkIndex(description, index, total);
      const refs = new Array<ImageRef>(indices.length);
      for (const file of files) {
        const wanted = indices.flatMap((index, position) => (index >= file.first && index < file.first + file.records ? [position] : []));
        if (wanted.length === 0) continue;
        const handle = await open(file.path, 'r');
        try {
          for (const position of wanted) {
            const planes = new Uint8Array(IMAGE_BYTES);
            await readExactly(handle, file.path, planes, (indices[position] - file.first) * recordBytes + layout.labelBytes);
            refs[position] = { pixels: interleave(planes) };
          }
        } finally {
          await handle.close();
        }
      }
      return refs;
    },
    targets: () => {
      targets ??= (async () => {
        const labels = new Int32Array(total);
        for (const file of files) {
          for await (const { record, bytes } of records(file)) labels[file.first + record] = labelOf(file, record, bytes);
        }
        return { kind: 'single-label' as const, classCount: classNames.length, labels };
      })();
      return targets;
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<DatasetSample> {
      for (const file of files) {
        for await (const { record, bytes } of records(file)) {
          const label = labelOf(file, record, bytes);
          yield { index: file.first + record, image: { pixels: interleave(bytes.subarray(layout.labelBytes)) }, target: { label } };
        }
      }
    },
  };
}

async function dataFiles(layout: Layout, path: string, split: CifarSplit): Promise<string[]> {
  if (await isFile(path)) return [path];
  if (!(await isDirectory(path))) throw new DatasetFileError(path, `not found (expected a ${layout.title} directory or .bin file)`);
  const directory = (await isDirectory(join(path, layout.archiveDirectory))) ? join(path, layout.archiveDirectory) : path;
  const files = layout.files[split].map((name) => join(directory, name));
  const missing: string[] = [];
  for (const file of files) if (!(await isFile(file))) missing.push(basename(file));
  if (missing.length > 0) {
    throw new DatasetFileError(directory, `missing ${layout.title} ${split} file(s) ${missing.join(', ')}`);
  }
  return files;
}

/** Class names from the archive's text files when present beside the data, the built-in lists otherwise. */
async function classNamesFor(variant: CifarVariant, labels: 'fine' | 'coarse', directory: string): Promise<readonly string[]> {
  const [file, builtIn] =
    variant === 'cifar10'
      ? ['batches.meta.txt', CIFAR10_CLASSES]
      : labels === 'fine'
        ? ['fine_label_names.txt', CIFAR100_FINE_CLASSES]
        : ['coarse_label_names.txt', CIFAR100_COARSE_CLASSES];
  const path = join(directory, file);
  if (!(await isFile(path))) return builtIn;
  const names = await readTextLines(path);
  if (names.length !== builtIn.length) {
    throw new DatasetFileError(path, `lists ${names.length} class names, expected ${builtIn.length}`);
  }
  return names;
}

async function readExactly(handle: FileHandle, path: string, target: Uint8Array, position: number): Promise<void> {
  const { bytesRead } = await handle.read(target, 0, target.length, position);
  if (bytesRead !== target.length) {
    throw new DatasetFileError(path, `expected ${target.length} bytes at offset ${position}, read ${bytesRead}: file changed or truncated`);
  }
}

/** CIFAR's planar R, G, B (1,024 bytes each) → interleaved RGB. */
function interleave(planes: Uint8Array): RgbImage {
  const data = new Uint8Array(IMAGE_BYTES);
  for (let p = 0; p < PIXELS; p++) {
    data[3 * p] = planes[p];
    data[3 * p + 1] = planes[PIXELS + p];
    data[3 * p + 2] = planes[2 * PIXELS + p];
  }
  return { width: SIDE, height: SIDE, data };
}
