// A dataset-format plugin, written as any user would: a module outside gradfeat whose default export
// is a GradfeatPlugin, loaded with `gradfeat --plugin ./rgb-records-plugin.mjs …`. It reads
// `rgb32:PATH`, a folder of `<split>.rgb` files (records of 32×32 RGB pixels, interleaved and
// row-major, then one label byte) and `classes.txt` (one class name a line).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetFileError } from '@gradfeat/datasets';

const SIDE = 32;
const PIXEL_BYTES = SIDE * SIDE * 3;
const RECORD_BYTES = PIXEL_BYTES + 1;

async function readFileOf(path, encoding) {
  try {
    return await readFile(path, encoding);
  } catch (error) {
    throw new DatasetFileError(path, error.code === 'ENOENT' ? 'file not found' : error.message);
  }
}

/** Opens `PATH/<split>.rgb`: an ImageDataset whose images are pixels in memory (nothing to decode). */
async function open(path, split) {
  const file = join(path, `${split}.rgb`);
  const bytes = await readFileOf(file);
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    throw new DatasetFileError(file, `${bytes.length} bytes is not a whole number of ${RECORD_BYTES}-byte records`);
  }
  const classNames = (await readFileOf(join(path, 'classes.txt'), 'utf8')).split('\n').filter((line) => line.trim() !== '');
  const count = bytes.length / RECORD_BYTES;
  const labels = Int32Array.from({ length: count }, (_, i) => bytes[i * RECORD_BYTES + PIXEL_BYTES]);
  const wrong = labels.findIndex((label) => label >= classNames.length);
  if (wrong >= 0)
    throw new DatasetFileError(file, `record ${wrong} has label ${labels[wrong]}, but classes.txt names ${classNames.length} classes`);
  // A copy per image: a view would carry the whole file to the decoding threads.
  const image = (index) => ({
    pixels: { width: SIDE, height: SIDE, data: new Uint8Array(bytes.subarray(index * RECORD_BYTES, index * RECORD_BYTES + PIXEL_BYTES)) },
  });
  const targets = { kind: 'single-label', classCount: classNames.length, labels };
  return {
    description: `rgb32 ${split} (${file})`,
    length: count,
    classNames,
    labelKind: 'single-label',
    images: async (indices) => indices.map(image),
    targets: async () => targets,
    async *[Symbol.asyncIterator]() {
      for (let index = 0; index < count; index++) yield { index, image: image(index), target: { label: labels[index] } };
    },
  };
}

/** @type {import('@gradfeat/core').GradfeatPlugin} */
export default {
  name: 'rgb-records',
  datasetFormats: [
    { name: 'rgb32', describes: 'a folder of <split>.rgb records (32×32 RGB + label) and classes.txt', splits: ['train', 'test'], open },
  ],
};
