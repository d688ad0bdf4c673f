import { inflateSync } from 'node:zlib';
import { DatasetFileError } from './errors.js';

/**
 * What an image file's header claims, read before any decoder runs: its real format (from its
 * bytes, not its name) and its size. Both decoders trust these numbers to allocate memory, so a file
 * whose header claims more pixels than the limit, or more than its compressed data could possibly
 * hold, is refused here instead of being decoded.
 */
export interface ImageHeader {
  readonly format: 'jpeg' | 'png';
  readonly width: number;
  readonly height: number;
}

/** Default largest image decoded: 2²⁶ pixels (8192 × 8192). */
export const DEFAULT_MAX_IMAGE_PIXELS = 2 ** 26;

/** Deflate's best case: 258 bytes from one 2-bit code, so a byte of compressed data never inflates to more than this. */
const DEFLATE_MAX_RATIO = 1032;
/** A Huffman-coded JPEG spends at least one bit per 8×8 block of its largest component (the DC difference code). */
const MIN_BITS_PER_JPEG_BLOCK = 1;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Channels of each PNG colour type: grey, RGB, palette, grey + alpha, RGBA. */
const PNG_CHANNELS: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Checks the header of a JPEG or PNG and returns it, or throws a DatasetFileError saying what is wrong. */
export function readImageHeader(bytes: Uint8Array, path: string, maxPixels: number): ImageHeader {
  const claim = startsWith(bytes, PNG_SIGNATURE)
    ? pngClaim(bytes, path)
    : startsWith(bytes, [0xff, 0xd8])
      ? jpegClaim(bytes, path)
      : undefined;
  if (!claim) throw new DatasetFileError(path, `cannot decode image: neither JPEG nor PNG${lookalike(bytes)}`);
  const { format, width, height } = claim;
  const fail = (problem: string): never => {
    throw new DatasetFileError(path, `cannot decode image: ${problem}`);
  };
  if (width === 0 || height === 0) fail(`its header claims ${width}×${height} pixels`);
  if (width * height > maxPixels) {
    fail(
      `its header claims ${width}×${height} pixels, more than the limit of ${maxPixels} per image (a corrupt header or a decompression bomb; if the image is real, raise maxImagePixels or decode with fewer workers, as each holds one image)`,
    );
  }
  if (claim.dataBytes < claim.minimumDataBytes) {
    fail(
      `too little pixel data for ${width}×${height} pixels (${claim.dataBytes} compressed bytes, at least ${claim.minimumDataBytes} needed): truncated`,
    );
  }
  return { format, width, height };
}

/**
 * The PNG's decompressed pixel data, checked to be exactly what its header calls for: pngjs would
 * otherwise return short data as a valid image (black where the data ran out).
 */
export function checkPngData(bytes: Uint8Array, path: string): void {
  const { rawBytes, chunks } = pngLayout(bytes, path);
  let inflated: Buffer;
  try {
    inflated = inflateSync(Buffer.concat(chunks), { maxOutputLength: rawBytes + 1 });
  } catch (error) {
    const tooLong = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new DatasetFileError(
      path,
      `cannot decode image: ${tooLong ? 'more pixel data than its header calls for' : `pixel data cannot be inflated (${(error as Error).message}): truncated or corrupt`}`,
      { cause: error },
    );
  }
  if (inflated.length !== rawBytes) {
    throw new DatasetFileError(
      path,
      `cannot decode image: ${inflated.length} bytes of pixel data where its header calls for ${rawBytes}: truncated`,
    );
  }
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return bytes.length >= prefix.length && prefix.every((byte, i) => bytes[i] === byte);
}

/** ' (it looks like SVG)' for formats worth naming in the error, else ''. */
function lookalike(bytes: Uint8Array): string {
  const text = new TextDecoder('latin1').decode(bytes.subarray(0, 256)).trimStart();
  const ascii = (offset: number, length: number) => new TextDecoder('latin1').decode(bytes.subarray(offset, offset + length));
  const name = /^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<(svg|!DOCTYPE svg)/i.test(text)
    ? 'SVG'
    : ascii(0, 4) === 'GIF8'
      ? 'GIF'
      : ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP'
        ? 'WebP'
        : ascii(4, 4) === 'ftyp'
          ? 'HEIF/AVIF'
          : ascii(0, 2) === 'BM'
            ? 'BMP'
            : ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*'
              ? 'TIFF'
              : text.startsWith('<')
                ? 'XML or HTML'
                : undefined;
  return name ? ` (it looks like ${name})` : '';
}

/** A header's claim, with the compressed data there is and the least the claimed size could be coded in. */
interface Claim extends ImageHeader {
  readonly dataBytes: number;
  readonly minimumDataBytes: number;
}

interface PngLayout {
  readonly width: number;
  readonly height: number;
  /** Decompressed size of the pixel data the header calls for (filter bytes included). */
  readonly rawBytes: number;
  readonly compressedBytes: number;
  /** The IDAT chunks' data, in order. */
  readonly chunks: readonly Uint8Array[];
}

function pngLayout(bytes: Uint8Array, path: string): PngLayout {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (problem: string): never => {
    throw new DatasetFileError(path, `cannot decode image: ${problem}`);
  };
  if (bytes.length < 33 || new TextDecoder('latin1').decode(bytes.subarray(12, 16)) !== 'IHDR' || view.getUint32(8) !== 13) {
    fail('PNG without an IHDR header chunk: truncated or corrupt');
  }
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const bitDepth = bytes[24];
  const channels = PNG_CHANNELS[bytes[25]];
  const interlaced = bytes[28] === 1;
  if (channels === undefined || ![1, 2, 4, 8, 16].includes(bitDepth))
    fail(`PNG colour type ${bytes[25]} with bit depth ${bitDepth} is not valid`);
  const rowBytes = (columns: number) => (columns === 0 ? 0 : 1 + Math.ceil((columns * channels * bitDepth) / 8));
  // Adam7 stores seven reduced images one after another.
  const passes = interlaced
    ? [
        [0, 0, 8, 8],
        [4, 0, 8, 8],
        [0, 4, 4, 8],
        [2, 0, 4, 4],
        [0, 2, 2, 4],
        [1, 0, 2, 2],
        [0, 1, 1, 2],
      ]
    : [[0, 0, 1, 1]];
  let rawBytes = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const columns = Math.ceil(Math.max(0, width - x0) / dx);
    rawBytes += rowBytes(columns) * Math.ceil(Math.max(0, height - y0) / dy);
  }
  const chunks: Uint8Array[] = [];
  let compressedBytes = 0;
  for (let offset = 8; offset + 8 <= bytes.length; ) {
    const length = view.getUint32(offset);
    const type = new TextDecoder('latin1').decode(bytes.subarray(offset + 4, offset + 8));
    if (offset + 12 + length > bytes.length) fail(`PNG chunk ${type} runs past the end of the file: truncated`);
    if (type === 'IDAT') {
      chunks.push(bytes.subarray(offset + 8, offset + 8 + length));
      compressedBytes += length;
    }
    if (type === 'IEND') break;
    offset += 12 + length;
  }
  return { width, height, rawBytes, compressedBytes, chunks };
}

function pngClaim(bytes: Uint8Array, path: string): Claim {
  const { width, height, rawBytes, compressedBytes } = pngLayout(bytes, path);
  return { format: 'png', width, height, dataBytes: compressedBytes, minimumDataBytes: Math.ceil(rawBytes / DEFLATE_MAX_RATIO) };
}

/** Start-of-frame markers; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames. */
const isFrameMarker = (marker: number) => marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
/** Frames coded with arithmetic coding (SOF9–11, 13–15), which can spend less than a bit per block. */
const isArithmetic = (marker: number) => marker >= 0xc9 && marker !== 0xcc;

/** Walks the JPEG's marker segments to its frame header (SOFn), which holds the size. */
function jpegClaim(bytes: Uint8Array, path: string): Claim {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (problem: string): never => {
    throw new DatasetFileError(path, `cannot decode image: ${problem}`);
  };
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) fail(`JPEG marker expected at byte ${offset}: corrupt`);
    const marker = bytes[offset + 1];
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      offset += 2; // markers without a length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) break;
    const length = view.getUint16(offset + 2);
    if (length < 2) fail(`JPEG segment at byte ${offset} has length ${length}: corrupt`);
    if (isFrameMarker(marker)) {
      if (length < 8 || offset + 9 > bytes.length) fail('JPEG frame header is cut short: truncated');
      const height = view.getUint16(offset + 5);
      const width = view.getUint16(offset + 7);
      if (height === 0) fail('JPEG height is left to a DNL marker, which is not supported');
      const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
      const minimumDataBytes = isArithmetic(marker) ? 0 : Math.ceil((blocks * MIN_BITS_PER_JPEG_BLOCK) / 8);
      return { format: 'jpeg', width, height, dataBytes: bytes.length, minimumDataBytes };
    }
    offset += 2 + length;
  }
  return fail('JPEG without a frame header (SOF) before its image data: truncated or corrupt');
}
