import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOutcome, Isolated } from '../../../test-support/isolated.js';
import { decodePixelLimit } from '../src/decode.js';
import { openImageFolder } from '../src/folder.js';
import { ImagePipeline } from '../src/pipeline.js';
import { encodePng, patternImage, temporaryDirectory } from './helpers.js';

const targets = fileURLToPath(new URL('./isolated-targets.ts', import.meta.url));
const DECODERS = ['js', 'sharp', 'auto'] as const;

/** A PNG whose header claims width × height RGB pixels, with `idat` as its only (compressed) pixel data. */
function pngClaiming(width: number, height: number, idat: Buffer = deflateSync(Buffer.alloc(1))): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const frame = Buffer.alloc(8 + body.length);
    frame.writeUInt32BE(data.length, 0);
    body.copy(frame, 4);
    frame.writeUInt32BE(crc32(body) >>> 0, 4 + body.length);
    return frame;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

describe('hostile image files (decoded in a child process)', () => {
  let root: string;
  let remove: () => Promise<void>;
  const isolated = new Isolated(targets, 20_000);
  const file = (name: string) => join(root, name);

  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    await writeFile(file('giant.png'), pngClaiming(2 ** 31 - 1, 2 ** 31 - 1));
    await writeFile(file('bomb.png'), pngClaiming(20_000, 20_000));
    await writeFile(file('short-idat.png'), pngClaiming(4_000, 4_000));
    const whole = encodePng(patternImage(100, 100));
    const idat = pngIdat(whole);
    await writeFile(file('half-idat.png'), pngClaiming(100, 100, idat.subarray(0, idat.length >> 1)));
    await writeFile(file('good.png'), whole);
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16000" height="16000"><rect width="16000" height="16000" fill="red"/></svg>`;
    await writeFile(file('vector.png'), svg);
  });
  afterAll(async () => {
    await isolated.close();
    await remove();
  });

  async function expectFileError(name: string, decoder: (typeof DECODERS)[number], problem: RegExp, maxPixels?: number) {
    const outcome = await isolated.call('decodeFile', file(name), decoder, maxPixels);
    expect(outcome.kind, `${name} with ${decoder}: ${describeOutcome(outcome)}`).toBe('threw');
    if (outcome.kind !== 'threw') return;
    expect(outcome.error.name).toBe('DatasetFileError');
    expect(outcome.error.path).toBe(file(name));
    expect(outcome.error.message).toMatch(problem);
    // Refused from the header: nothing near the claimed size is allocated.
    expect(outcome.peakGrowthBytes, describeOutcome(outcome)).toBeLessThan(64 * 2 ** 20);
  }

  for (const decoder of DECODERS) {
    it(`${decoder}: a 66-byte PNG claiming 2³¹−1 × 2³¹−1 pixels is refused from its header, not a native crash`, async () => {
      await expectFileError('giant.png', decoder, /2147483647×2147483647 pixels.*more than the limit/);
    });

    it(`${decoder}: a PNG claiming 20,000² pixels over a few bytes of data is refused, not decoded to a black image`, async () => {
      await expectFileError('bomb.png', decoder, /20000×20000 pixels/);
    });

    it(`${decoder}: pixel data too short for the size the header claims is an error (truncated IDAT)`, async () => {
      await expectFileError('short-idat.png', decoder, /too little pixel data for 4000×4000.*truncated/);
      await expectFileError('half-idat.png', decoder, /truncated|too short|read error/i);
    });

    it(`${decoder}: an SVG named .png is refused by its real format, not rendered`, async () => {
      await expectFileError('vector.png', decoder, /neither JPEG nor PNG \(it looks like SVG\)/);
    });

    it(`${decoder}: an image above the pixel limit is refused before decoding; one within it decodes`, async () => {
      await expectFileError('good.png', decoder, /100×100 pixels.*more than the limit of 9999/, 9_999);
      const outcome = await isolated.call('decodeFile', file('good.png'), decoder, 10_000);
      expect(outcome, describeOutcome(outcome)).toMatchObject({ kind: 'returned', value: { width: 100, height: 100 } });
    });
  }
});

describe('decode memory accounts for one decode per worker', () => {
  it('shares the decode memory budget among the workers, capped by the per-image limit', () => {
    const gib = 2 ** 30;
    // A quarter of the memory for decoding, 16 bytes per pixel at the peak of a decode.
    expect(decodePixelLimit({ workers: 2, memoryBytes: 16 * gib, maxImagePixels: 2 ** 26 })).toBe(2 ** 26);
    expect(decodePixelLimit({ workers: 64, memoryBytes: 16 * gib, maxImagePixels: 2 ** 26 })).toBe(Math.floor((4 * gib) / 64 / 16));
    // Decoding on the calling thread is one decode at a time.
    expect(decodePixelLimit({ workers: 0, memoryBytes: 2 * gib, maxImagePixels: 2 ** 26 })).toBe(Math.floor(gib / 2 / 16));
  });

  it('the pipeline passes its limit to every worker: a larger image fails with its path and size', async () => {
    const { path: root, remove } = await temporaryDirectory();
    try {
      await mkdir(join(root, 'cats'));
      await writeFile(join(root, 'cats', 'big.png'), encodePng(patternImage(12, 10)));
      const pipeline = await ImagePipeline.create(await openImageFolder(root), {
        transform: { size: [4, 4], crop: 'center' },
        workers: 2,
        maxImagePixels: 100,
      });
      try {
        await expect(pipeline.read([0])).rejects.toThrow(
          `${join(root, 'cats', 'big.png')}: cannot decode image: its header claims 12×10 pixels, more than the limit of 100`,
        );
      } finally {
        await pipeline.close();
      }
    } finally {
      await remove();
    }
  });
});

/** The compressed pixel data of a PNG with one IDAT chunk. */
function pngIdat(png: Buffer): Buffer {
  let offset = 8;
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    if (png.toString('latin1', offset + 4, offset + 8) === 'IDAT') return png.subarray(offset + 8, offset + 8 + length);
    offset += 12 + length;
  }
  throw new Error('no IDAT chunk');
}
