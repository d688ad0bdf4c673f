import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import jpeg from 'jpeg-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as fuzz from '../../../test-support/fuzz.js';
import { Isolated } from '../../../test-support/isolated.js';
import { DECODE_BYTES_PER_PIXEL } from '../src/decode.js';
import { encodePng, encodePngPixels, patternImage, temporaryDirectory } from './helpers.js';

/** Deflate's best ratio: a PNG's pixels take at least 1/1032 of their size compressed (image-header.ts). */
const MOST_PIXELS_PER_BYTE = 1032;

describe('fuzzing the image decoders (mutated PNGs and JPEGs, in a child process)', () => {
  let root: string;
  let remove: () => Promise<void>;
  const seeds: fuzz.FuzzSeed[] = [];
  const isolated = new Isolated(fileURLToPath(new URL('./isolated-targets.ts', import.meta.url)), fuzz.CALL_TIMEOUT_MS);

  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    await mkdir(join(root, 'cases'));
    const image = patternImage(16, 12);
    const raw = () => sharp(Buffer.from(image.data), { raw: { width: 16, height: 12, channels: 3 } });
    const pngs = [
      encodePng(image),
      encodePngPixels(
        4,
        3,
        Uint8Array.from({ length: 12 }, (_, i) => i * 20),
        0,
      ),
      encodePngPixels(
        3,
        2,
        Uint8Array.from({ length: 24 }, (_, i) => i * 10),
        6,
      ),
      await raw().png({ progressive: true }).toBuffer(),
      await raw().png({ palette: true }).toBuffer(),
    ];
    const jpegs = [
      await raw().jpeg({ quality: 80 }).toBuffer(),
      await raw().jpeg({ quality: 80, progressive: true }).toBuffer(),
      jpeg.encode({ width: 16, height: 12, data: Buffer.from(rgbaOf(image.data)) }, 75).data,
    ];
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="12"><rect width="16" height="12" fill="red"/></svg>';
    seeds.push(
      ...pngs.map((bytes) => ({ bytes, fields: pngFields(bytes), repair: repairPngCrcs })),
      ...jpegs.map((bytes) => ({ bytes, fields: jpegFields(bytes) })),
      { bytes: new TextEncoder().encode(svg) },
    );
  });
  afterAll(async () => {
    await isolated.close();
    await remove();
  });

  it(`${fuzz.runs(800)} mutated images (seed ${fuzz.SEED}) each decode, or fail with a DatasetFileError naming the file, within bounded memory`, async () => {
    let index = 0;
    await fc.assert(
      fc.asyncProperty(fuzz.mutatedBytes(seeds), fc.constantFrom('js', 'sharp', 'auto'), async (input, decoder) => {
        const bytes = fuzz.applyByteMutations(seeds, input);
        const file = join(root, 'cases', `${index++}.png`);
        await writeFile(file, bytes);
        const outcome = await isolated.call('decodeFile', file, decoder, null);
        fuzz.expectClean(
          outcome,
          {
            names: [file],
            errors: ['DatasetFileError'],
            wrapsDecoderErrors: true,
            maxPeakGrowthBytes: fuzz.ALLOCATION_SLACK_BYTES + DECODE_BYTES_PER_PIXEL * MOST_PIXELS_PER_BYTE * bytes.length,
          },
          `${decoder} decoder, ${bytes.length}-byte file`,
        );
      }),
      { seed: fuzz.SEED, numRuns: fuzz.runs(800) },
    );
  });
});

function rgbaOf(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgb.length / 3) * 4).fill(255);
  for (let p = 0; p < rgb.length / 3; p++) out.set(rgb.subarray(3 * p, 3 * p + 3), 4 * p);
  return out;
}

/** A PNG's header fields (the size as one, each side, depth, colour type, interlacing) and every chunk's length. */
function pngFields(png: Uint8Array): fuzz.SeedField[][] {
  const width = { offset: 16, bytes: 4 } as const;
  const height = { offset: 20, bytes: 4 } as const;
  const fields: fuzz.SeedField[][] = [
    [width, height],
    [width],
    [height],
    [{ offset: 24, bytes: 1 }],
    [{ offset: 25, bytes: 1 }],
    [{ offset: 28, bytes: 1 }],
  ];
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  for (let offset = 8; offset + 8 <= png.length; offset += 12 + view.getUint32(offset)) fields.push([{ offset, bytes: 4 }]);
  return fields;
}

/** Recomputes every chunk's CRC that lies within the file, so a mutated header is read rather than rejected. */
function repairPngCrcs(png: Uint8Array): Uint8Array {
  const out = new Uint8Array(png);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let offset = 8; offset + 12 <= out.length; ) {
    const length = view.getUint32(offset);
    if (offset + 12 + length > out.length) break;
    view.setUint32(offset + 8 + length, crc32(out.subarray(offset + 4, offset + 8 + length)) >>> 0);
    offset += 12 + length;
  }
  return out;
}

/** A JPEG's frame size (both sides as one, and each), component count, and every segment's length. */
function jpegFields(bytes: Uint8Array): fuzz.SeedField[][] {
  const fields: fuzz.SeedField[][] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 2; offset + 4 <= bytes.length && bytes[offset] === 0xff; ) {
    const marker = bytes[offset + 1];
    if (marker === 0xda) break;
    fields.push([{ offset: offset + 2, bytes: 2 }]);
    if (marker >= 0xc0 && marker <= 0xc2) {
      const height = { offset: offset + 5, bytes: 2 } as const;
      const width = { offset: offset + 7, bytes: 2 } as const;
      fields.push([height, width], [height, width], [height], [width], [{ offset: offset + 9, bytes: 1 }]);
    }
    offset += 2 + view.getUint16(offset + 2);
  }
  return fields;
}
