/**
 * Entry points the hostile-file tests and the fuzz campaign call in a child process (test-support/
 * isolated.ts), where a native crash or a runaway allocation cannot take the test runner down. Each
 * returns a small JSON summary of what it read.
 */
import { readFile } from 'node:fs/promises';
import { openFeatureCache } from '../src/cache.js';
import { openCifar } from '../src/cifar.js';
import { type DecoderChoice, decodeImage } from '../src/decode.js';
import { parseVocAnnotation } from '../src/voc.js';

/** `maxPixels` null (an absent argument after the JSON trip) means the default limit. */
export async function decodeFile(path: string, decoder: DecoderChoice, maxPixels: number | null) {
  const image = await decodeImage(await readFile(path), path, decoder, maxPixels ?? undefined);
  return { width: image.width, height: image.height };
}

/** Opens a CIFAR-10 file, scans its labels and reads its first and last records. */
export async function readCifar(path: string) {
  const dataset = await openCifar('cifar10', path);
  const targets = await dataset.targets();
  await dataset.images([0, dataset.length - 1]);
  return { length: dataset.length, classCount: targets.classCount };
}

export async function parseVocFile(path: string) {
  const annotation = parseVocAnnotation(await readFile(path, 'utf8'), path);
  return { objects: annotation.objects.length };
}

/** Opens a feature cache and reads every row in order, in batches of 7. */
export async function readFeatureCache(directory: string, key: Parameters<typeof openFeatureCache>[1]) {
  const cache = await openFeatureCache(directory, key);
  let sum = 0;
  for (let start = 0; start < cache.source.count; start += 7) {
    const indices = Array.from({ length: Math.min(7, cache.source.count - start) }, (_, i) => start + i);
    for (const value of (await cache.source.read(indices)).data) sum += value;
  }
  return { rows: cache.source.count, sum };
}
