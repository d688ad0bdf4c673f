import { sizeOf } from '@gradfeat/core';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../src/random.js';
import {
  cropsPerImage,
  type TransformSpec,
  transformedShape,
  transformForModel,
  transformImage,
  validateTransform,
} from '../src/transform.js';
import type { RgbImage } from '../src/types.js';

/** Pixel (x, y) is R = 10y + x, G = 100 + R, B = 200 − R: every value tells where it came from. */
function coordinateImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const r = 10 * y + x;
      data.set([r, 100 + r, 200 - r], 3 * (y * width + x));
    }
  }
  return { width, height, data };
}

const raw = { scale: 1, offset: 0 } as const;

function run(image: RgbImage, spec: TransformSpec, seed = 1): Float32Array {
  const out = new Float32Array(cropsPerImage(spec) * sizeOf(transformedShape(spec)));
  transformImage(image, spec, seededRandom(seed), out, 0);
  return out;
}

/** The red plane of crop `crop` of an NCHW output, as rows. */
function redRows(out: Float32Array, crop: number, height: number, width: number): number[][] {
  const start = crop * 3 * height * width;
  return Array.from({ length: height }, (_, y) => [...out.subarray(start + y * width, start + (y + 1) * width)]);
}

describe('transforms (hand-computed expectations)', () => {
  it('centre-crops without resizing when the shorter side already has the size: 4×3 → 2×2 takes columns 1–2, rows 0–1', () => {
    // Offsets as torchvision computes them: round((3−2)/2) = round(0.5) = 0 (ties to even), round((4−2)/2) = 1.
    const out = run(coordinateImage(4, 3), { size: [2, 2], crop: 'center', resizeShorter: 3, normalize: raw });
    expect(redRows(out, 0, 2, 2)).toEqual([
      [1, 2],
      [11, 12],
    ]);
    expect([...out.subarray(4, 8)]).toEqual([101, 102, 111, 112]);
    expect([...out.subarray(8, 12)]).toEqual([199, 198, 189, 188]);
  });

  it('lays out NHWC when asked', () => {
    const out = run(coordinateImage(4, 3), { size: [2, 2], crop: 'center', resizeShorter: 3, normalize: raw, layout: 'NHWC' });
    expect([...out]).toEqual([1, 101, 199, 2, 102, 198, 11, 111, 189, 12, 112, 188]);
  });

  it('ten-crop: corners, centre, then each mirrored', () => {
    const out = run(coordinateImage(3, 3), { size: [2, 2], crop: 'ten-crop', resizeShorter: 3, normalize: raw });
    const crops = Array.from({ length: 10 }, (_, i) => redRows(out, i, 2, 2));
    const topLeft = [
      [0, 1],
      [10, 11],
    ];
    const topRight = [
      [1, 2],
      [11, 12],
    ];
    const bottomLeft = [
      [10, 11],
      [20, 21],
    ];
    const bottomRight = [
      [11, 12],
      [21, 22],
    ];
    const mirror = (rows: number[][]) => rows.map((row) => [...row].reverse());
    // Centre offset round(0.5) = 0 in both axes: the centre crop is the top-left one.
    const expected = [topLeft, topRight, bottomLeft, bottomRight, topLeft];
    expect(crops).toEqual([...expected, ...expected.map(mirror)]);
  });

  it('upsamples bilinearly with half-pixel centres: [a, b] → [a, ¾a+¼b, ¼a+¾b, b]', () => {
    const image: RgbImage = { width: 2, height: 2, data: Uint8Array.from([0, 0, 0, 100, 0, 0, 40, 0, 0, 140, 0, 0]) };
    const out = run(image, { size: [4, 4], crop: 'center', normalize: raw });
    const rows = redRows(out, 0, 4, 4);
    expect(rows[0]).toEqual([0, 25, 75, 100]);
    expect(rows[3]).toEqual([40, 65, 115, 140]);
    // Row 1 is ¾ row 0 + ¼ row 3.
    for (const [x, value] of rows[1].entries()) expect(value).toBeCloseTo(0.75 * rows[0][x] + 0.25 * rows[3][x], 4);
  });

  it('downsamples with an antialiasing triangle twice as wide: 4 → 2 weights (3,3,1,0)/7 and (0,1,3,3)/7', () => {
    const values = [70, 140, 210, 0];
    const data = new Uint8Array(4 * 4 * 3);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) data[3 * (4 * y + x)] = values[x];
    const out = run({ width: 4, height: 4, data }, { size: [2, 2], crop: 'center', resizeShorter: 2, normalize: raw });
    const rows = redRows(out, 0, 2, 2);
    const left = (3 * 70 + 3 * 140 + 210) / 7;
    const right = (140 + 3 * 210 + 3 * 0) / 7;
    for (const row of rows) {
      expect(row[0]).toBeCloseTo(left, 4);
      expect(row[1]).toBeCloseTo(right, 4);
    }
  });

  it('resizes the shorter side keeping the aspect ratio: 8×4 → shorter 2 gives 4×2, centre crop 2×2 takes columns 1–2', () => {
    // Each 2×2 block of the source becomes one pixel; block averages with the 4→2 weights along both axes.
    const image = coordinateImage(8, 4);
    const out = run(image, { size: [2, 2], crop: 'center', resizeShorter: 2, normalize: raw });
    const weights = [3 / 7, 3 / 7, 1 / 7, 0];
    // Resized column 1 covers source columns 2–3 (centre 3): taps at columns 1..4 with the same weights pattern (1,3,3,1)/8.
    const columnWeights = new Map([
      [1, 1 / 8],
      [2, 3 / 8],
      [3, 3 / 8],
      [4, 1 / 8],
    ]);
    let expected = 0;
    for (const [y, wy] of weights.entries()) for (const [x, wx] of columnWeights) expected += wy * wx * (10 * y + x);
    expect(redRows(out, 0, 2, 2)[0][0]).toBeCloseTo(expected, 4);
  });

  it('normalises with mean/std over x/255 and with scale/offset', () => {
    const image: RgbImage = { width: 1, height: 1, data: Uint8Array.from([51, 102, 255]) };
    const meanStd = run(image, { size: [1, 1], crop: 'center', normalize: { mean: [0.5, 0.4, 0.5], std: [0.25, 0.2, 0.5] } });
    expect(meanStd[0]).toBeCloseTo((0.2 - 0.5) / 0.25, 6);
    expect(meanStd[1]).toBeCloseTo((0.4 - 0.4) / 0.2, 6);
    expect(meanStd[2]).toBeCloseTo((1 - 0.5) / 0.5, 6);
    const scaled = run(image, { size: [1, 1], crop: 'center', normalize: { scale: 1 / 127.5, offset: -1 } });
    expect([...scaled].map((v) => Number(v.toFixed(5)))).toEqual([-0.6, -0.2, 1]);
    const plain = run(image, { size: [1, 1], crop: 'center' });
    expect(plain[0]).toBeCloseTo(0.2, 6);
  });

  it('random-resized crop at fixed area ¼ and aspect 1 copies an exact 4×4 window, the same one for the same seed', () => {
    const image = coordinateImage(8, 8);
    const spec: TransformSpec = { size: [4, 4], crop: 'random-resized', areaRange: [0.25, 0.25], aspectRange: [1, 1], normalize: raw };
    const origins = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const rows = redRows(run(image, spec, seed), 0, 4, 4);
      const top = Math.floor(rows[0][0] / 10);
      const left = rows[0][0] % 10;
      expect(rows).toEqual(Array.from({ length: 4 }, (_, y) => Array.from({ length: 4 }, (_, x) => 10 * (top + y) + left + x)));
      expect(run(image, spec, seed)).toEqual(run(image, spec, seed));
      origins.add(`${top},${left}`);
    }
    // 25 possible windows: 40 seeds should land on many of them.
    expect(origins.size).toBeGreaterThan(10);
  });

  it('flips about half the images, reproducibly', () => {
    const image = coordinateImage(4, 4);
    const spec: TransformSpec = { size: [4, 4], crop: 'center', flip: true, normalize: raw };
    let flipped = 0;
    for (let seed = 0; seed < 400; seed++) {
      const first = run(image, spec, seed)[0];
      expect([0, 3]).toContain(first);
      if (first === 3) flipped++;
    }
    expect(flipped).toBeGreaterThan(160);
    expect(flipped).toBeLessThan(240);
  });

  it("builds the spec from a model's preprocessing", () => {
    const eval224 = transformForModel({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], size: [224, 224] }, 'eval', {
      resizeShorter: 256,
    });
    expect(eval224).toMatchObject({ size: [224, 224], crop: 'center', resizeShorter: 256, normalize: { mean: [0.485, 0.456, 0.406] } });
    const train = transformForModel({ scale: 1 / 127.5, offset: -1, size: [224, 224] }, 'train', { seed: 7 });
    expect(train).toMatchObject({ crop: 'random-resized', flip: true, normalize: { scale: 1 / 127.5, offset: -1 }, seed: 7 });
    expect(transformForModel({}, 'ten-crop', { size: [32, 32] })).toMatchObject({ crop: 'ten-crop', size: [32, 32] });
    expect(() => transformForModel({ mean: [0, 0, 0] }, 'eval', { size: [32, 32] })).toThrow('only one of mean and std');
    expect(() => transformForModel({}, 'eval')).toThrow('does not give an input size');
  });

  it('rejects specs that cannot work, saying why', () => {
    expect(() => validateTransform({ size: [0, 4], crop: 'center' })).toThrow('size must be two positive integers');
    expect(() => validateTransform({ size: [4, 4], crop: 'ten-crop', flip: true })).toThrow('already includes the mirrored crops');
    expect(() => validateTransform({ size: [4, 4], crop: 'center', normalize: { mean: [0.5], std: [0.5] } })).toThrow('3 means');
    expect(() => run(coordinateImage(40, 4), { size: [8, 8], crop: 'center', resizeShorter: 4 })).toThrow(
      'a 40×4 image resized to 40×4 is smaller than the 8×8 crop',
    );
  });
});
