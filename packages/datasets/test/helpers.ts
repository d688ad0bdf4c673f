import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import type { RgbImage } from '../src/types.js';

/** A fresh directory under the system temp dir; `remove` deletes it and everything in it. */
export async function temporaryDirectory(): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'gradfeat-datasets-'));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A deterministic RGB image whose every pixel differs from its neighbours. */
export function patternImage(width: number, height: number, seed = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101 + ((i * i) % 23)) % 256;
  return { width, height, data };
}

/** PNG bytes of interleaved pixels in the colour type's layout: 0 grey, 2 RGB, 6 RGBA. */
export function encodePngPixels(width: number, height: number, pixels: Uint8Array, colorType: 0 | 2 | 6): Buffer {
  const png = new PNG({ width, height });
  png.data = Buffer.from(pixels);
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: colorType === 6 });
}

export function encodePng(image: RgbImage): Buffer {
  return encodePngPixels(image.width, image.height, image.data, 2);
}

/**
 * CIFAR binary records: label byte(s) then R, G, B planes. Record r's labels are `labels(r)` and its
 * pixel p of channel c is (r + 7c + 3p) mod 256, so any record or plane mix-up is visible.
 */
export function cifarRecords(count: number, labels: (record: number) => number[]): Buffer {
  const labelBytes = labels(0).length;
  const record = labelBytes + 3072;
  const buffer = Buffer.alloc(count * record);
  for (let r = 0; r < count; r++) {
    buffer.set(labels(r), r * record);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) buffer[r * record + labelBytes + c * 1024 + p] = (r + 7 * c + 3 * p) % 256;
  }
  return buffer;
}
