import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DatasetFileError, fileSystemError } from './errors.js';
import { checkPngData, DEFAULT_MAX_IMAGE_PIXELS, readImageHeader } from './image-header.js';
import type { ImageRef, RgbImage } from './types.js';

/**
 * 'auto' uses jpeg-js/pngjs for small files, where sharp's per-call overhead dominates (measured:
 * 0.23 ms vs 0.82 ms for a CIFAR-size JPEG), and sharp (native libvips) for larger ones (2.8 ms vs
 * 10.6 ms for a 500×375 photo) when it loads on this machine.
 */
export type DecoderChoice = 'auto' | 'sharp' | 'js';

/** Files up to this size decode faster in pure JS than through sharp. */
const SMALL_FILE_BYTES = 16 * 1024;

type Sharp = typeof import('sharp');

/**
 * Peak bytes one decode holds per pixel: pngjs's inflated rows (8 bytes a pixel for 16-bit RGBA), its
 * RGBA bitmap and the RGB copy; sharp needs less.
 */
export const DECODE_BYTES_PER_PIXEL = 16;
/** The share of the machine's memory that image decoding may take, all workers together. */
const DECODE_MEMORY_SHARE = 1 / 4;

/**
 * The most pixels one image may have when `workers` threads decode at once (0: on the calling thread,
 * one at a time): each may hold one image at its peak, so they share a quarter of `memoryBytes`
 * (default: this machine's memory, or the container's limit), and never more than `maxImagePixels`.
 */
export function decodePixelLimit(options: { workers: number; memoryBytes?: number; maxImagePixels?: number }): number {
  const memory = options.memoryBytes ?? Math.min(totalmem(), process.constrainedMemory?.() || Number.POSITIVE_INFINITY);
  const perDecode = (memory * DECODE_MEMORY_SHARE) / Math.max(1, options.workers);
  return Math.min(options.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS, Math.floor(perDecode / DECODE_BYTES_PER_PIXEL));
}

let sharpModule: Promise<Sharp | undefined> | undefined;

/** sharp, or undefined when its native binary cannot load here (then the pure-JS decoders are used). */
export function loadSharp(): Promise<Sharp | undefined> {
  sharpModule ??= import('sharp').then(
    (module) => module.default,
    () => undefined,
  );
  return sharpModule;
}

/**
 * The pixels of a sample: read and decoded when it is a file. The read is synchronous because this
 * runs on decode workers: an asynchronous one would queue on libuv's small thread pool, which all
 * workers and sharp share, and costs several times more for small files.
 */
export async function loadImage(ref: ImageRef, decoder: DecoderChoice, maxPixels = DEFAULT_MAX_IMAGE_PIXELS): Promise<RgbImage> {
  if ('pixels' in ref) return ref.pixels;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(ref.path);
  } catch (error) {
    throw fileSystemError(ref.path, error);
  }
  return decodeImage(bytes, ref.path, decoder, maxPixels);
}

/**
 * Decodes a JPEG or PNG to 8-bit RGB (alpha dropped, grey expanded); `path` names the image in errors.
 * The format is taken from the bytes, whatever the file is called, and an image whose header claims
 * more than `maxPixels` pixels, or more than its data could hold, is refused before decoding.
 */
export async function decodeImage(
  bytes: Uint8Array,
  path: string,
  decoder: DecoderChoice,
  maxPixels = DEFAULT_MAX_IMAGE_PIXELS,
): Promise<RgbImage> {
  if (bytes.length === 0) throw new DatasetFileError(path, 'empty file');
  const pureJs = decoder === 'js' || (decoder === 'auto' && bytes.length <= SMALL_FILE_BYTES);
  const sharp = pureJs ? undefined : await loadSharp();
  if (decoder === 'sharp' && !sharp) throw new Error('the sharp decoder was requested but sharp cannot load on this machine');
  return sharp ? decodeWithSharp(sharp, bytes, path, maxPixels) : decodeWithJs(bytes, path, maxPixels);
}

async function decodeWithSharp(sharp: Sharp, bytes: Uint8Array, path: string, maxPixels: number): Promise<RgbImage> {
  readImageHeader(bytes, path, maxPixels);
  try {
    const { data, info } = await sharp(bytes, { failOn: 'warning', limitInputPixels: maxPixels })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (error) {
    throw new DatasetFileError(path, `cannot decode image: ${(error as Error).message}`, { cause: error });
  }
}

/** Decodes JPEG or PNG bytes with jpeg-js or pngjs (no native code), refusing images over `maxPixels`. */
export function decodeWithJs(bytes: Uint8Array, path: string, maxPixels = DEFAULT_MAX_IMAGE_PIXELS): RgbImage {
  const { format } = readImageHeader(bytes, path, maxPixels);
  // pngjs returns short pixel data as a valid image, so the data is checked first.
  if (format === 'png') checkPngData(bytes, path);
  try {
    if (format === 'jpeg') {
      const decoded = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: false,
        tolerantDecoding: false,
        maxResolutionInMP: maxPixels / 1e6,
        maxMemoryUsageInMB: Math.ceil((maxPixels * DECODE_BYTES_PER_PIXEL) / 2 ** 20),
      });
      return toRgb(decoded.width, decoded.height, decoded.data);
    }
    const decoded = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    return toRgb(decoded.width, decoded.height, decoded.data);
  } catch (error) {
    // jpeg-js and pngjs fail on some corrupt data with their own TypeErrors; say what that means.
    const crashed = error instanceof TypeError || error instanceof RangeError;
    const problem = crashed ? `corrupt ${format.toUpperCase()} data (the decoder failed: ${error.message})` : (error as Error).message;
    throw new DatasetFileError(path, `cannot decode image: ${problem}`, { cause: error });
  }
}

/** Interleaved grey, RGB or RGBA → RGB. */
function toRgb(width: number, height: number, data: Uint8Array): RgbImage {
  const pixels = width * height;
  const channels = data.length / pixels;
  if (channels === 3) return { width, height, data };
  if (channels !== 1 && channels !== 4) throw new Error(`decoder returned ${channels} values per pixel`);
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgb[3 * p + c] = data[p * channels + (channels === 1 ? 0 : c)];
  }
  return { width, height, data: rgb };
}
