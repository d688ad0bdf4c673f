import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeImage, decodeWithJs, loadImage } from '../src/decode.js';
import { DatasetFileError } from '../src/errors.js';
import type { RgbImage } from '../src/types.js';
import { encodePng, encodePngPixels, patternImage, temporaryDirectory } from './helpers.js';

/** A smooth photo-like image (gradients and a soft disc), which JPEG reproduces closely. */
function smoothImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const disc = Math.hypot(x - width / 2, y - height / 3) < width / 4 ? 60 : 0;
      data.set([(x * 255) / width, (y * 255) / height, 128 + disc], 3 * (y * width + x));
    }
  }
  return { width, height, data };
}

function differences(a: RgbImage, b: RgbImage): { mean: number; max: number } {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let total = 0;
  let max = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    total += d;
    max = Math.max(max, d);
  }
  return { mean: total / a.data.length, max };
}

describe('decoding (sharp and the pure-JS fallback)', () => {
  it('decodes a lossless PNG to exactly its pixels with both decoders', async () => {
    const image = patternImage(13, 7);
    const png = encodePng(image);
    for (const decoder of ['sharp', 'js'] as const) {
      const decoded = await decodeImage(png, 'pattern.png', decoder);
      expect([decoded.width, decoded.height]).toEqual([13, 7]);
      expect(Buffer.from(decoded.data).equals(Buffer.from(image.data))).toBe(true);
    }
  });

  it('expands grey PNGs to RGB and drops alpha, identically in both decoders', async () => {
    const grey = encodePngPixels(3, 2, Uint8Array.from([0, 50, 100, 150, 200, 250]), 0);
    const rgba = encodePngPixels(2, 1, Uint8Array.from([10, 20, 30, 0, 40, 50, 60, 255]), 6);
    for (const decoder of ['sharp', 'js'] as const) {
      expect([...(await decodeImage(grey, 'grey.png', decoder)).data.subarray(0, 6)]).toEqual([0, 0, 0, 50, 50, 50]);
      expect([...(await decodeImage(rgba, 'rgba.png', decoder)).data]).toEqual([10, 20, 30, 40, 50, 60]);
    }
  });

  // The decoders round the IDCT differently (±few levels), and at 4:2:0 libjpeg-turbo interpolates the
  // half-resolution chroma ("fancy upsampling") where jpeg-js replicates it, which moves colour edges more.
  const cases = [
    { name: 'sharp-encoded 4:4:4', meanBelow: 1, maxAtMost: 4, encode: (image: RgbImage) => sharpJpeg(image, '4:4:4') },
    {
      name: 'jpeg-js-encoded',
      meanBelow: 1,
      maxAtMost: 4,
      encode: (image: RgbImage) => jpeg.encode({ ...image, data: rgba(image) }, 75).data,
    },
    // The disc is a 60-level step in blue: a half-pixel shift of its edge can move a value by up to half of it.
    { name: 'sharp-encoded 4:2:0', meanBelow: 2.5, maxAtMost: 30, encode: (image: RgbImage) => sharpJpeg(image, '4:2:0') },
  ];
  for (const { name, meanBelow, maxAtMost, encode } of cases) {
    it(`sharp and jpeg-js agree on a ${name} JPEG (quality 75) within rounding: mean |Δ| < ${meanBelow}, max |Δ| ≤ ${maxAtMost}`, async () => {
      const image = smoothImage(64, 48);
      const encoded = await encode(image);
      const fromSharp = await decodeImage(encoded, 'smooth.jpg', 'sharp');
      const fromJs = await decodeImage(encoded, 'smooth.jpg', 'js');
      const between = differences(fromSharp, fromJs);
      expect(between.mean).toBeLessThan(meanBelow);
      expect(between.max).toBeLessThanOrEqual(maxAtMost);
      // Both are close to the original too: the loss is JPEG's, not the decoders'.
      expect(differences(fromSharp, image).mean).toBeLessThan(3);
      expect(differences(fromJs, image).mean).toBeLessThan(3);
    });
  }

  describe('bad files', () => {
    let root: string;
    let remove: () => Promise<void>;
    let goodJpeg: Buffer;
    beforeAll(async () => {
      ({ path: root, remove } = await temporaryDirectory());
      await mkdir(root, { recursive: true });
      goodJpeg = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 10, b: 10 } } })
        .jpeg()
        .toBuffer();
      await writeFile(join(root, 'truncated.jpg'), goodJpeg.subarray(0, Math.floor(goodJpeg.length / 2)));
      await writeFile(join(root, 'text.jpg'), 'this is not an image');
      await writeFile(join(root, 'empty.png'), '');
    });
    afterAll(() => remove());

    for (const decoder of ['sharp', 'js'] as const) {
      it(`${decoder}: a truncated, a non-image, an empty and a missing file each fail with the path and the problem`, async () => {
        const cases: [string, RegExp][] = [
          ['truncated.jpg', /cannot decode image: .*(premature end|marker|truncated)/i],
          ['text.jpg', /cannot decode image: .*(unsupported image format|neither JPEG nor PNG)/],
          ['empty.png', /empty file/],
          ['missing.jpg', /file not found/],
        ];
        for (const [name, problem] of cases) {
          const path = join(root, name);
          const error = await loadImage({ path }, decoder).catch((e: unknown) => e);
          expect(error).toBeInstanceOf(DatasetFileError);
          expect((error as DatasetFileError).path).toBe(path);
          expect((error as Error).message).toMatch(problem);
        }
      });
    }

    it('the JS decoder reads the same JPEG sharp wrote', () => {
      const decoded = decodeWithJs(goodJpeg, 'red.jpg');
      expect(decoded.width).toBe(16);
      expect(Math.abs(decoded.data[0] - 200)).toBeLessThanOrEqual(3);
    });
  });
});

function sharpJpeg(image: RgbImage, chromaSubsampling: '4:4:4' | '4:2:0'): Promise<Buffer> {
  return sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality: 75, chromaSubsampling })
    .toBuffer();
}

function rgba(image: RgbImage): Uint8Array {
  const out = new Uint8Array(image.width * image.height * 4).fill(255);
  for (let p = 0; p < image.width * image.height; p++) out.set(image.data.subarray(3 * p, 3 * p + 3), 4 * p);
  return out;
}
