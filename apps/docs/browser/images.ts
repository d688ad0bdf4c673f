import { Rng } from '@gradfeat/core';
import type { RgbImage } from '@gradfeat/datasets';
import { strToU8, zipSync } from 'fflate';
import type { LabelledImage } from './protocol.js';

/**
 * The page's images: decoded or captured once into 8-bit RGB, which is what training reads and what
 * the downloaded folder dataset stores (as PNG, losslessly), so that the CLI sees the same pixels.
 */

/** Images are kept at most this many pixels on their shorter side: the model's transform crops 224 from it. */
export const STORED_SHORTER_SIDE = 256;

function storedSize(width: number, height: number): [number, number] {
  const scale = Math.min(1, STORED_SHORTER_SIDE / Math.min(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/** RGB pixels of what a canvas draws (alpha dropped: images are composited on nothing, as decoders do). */
function drawnPixels(draw: (context: OffscreenCanvasRenderingContext2D) => void, width: number, height: number): RgbImage {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  if (!context) throw new Error('this browser cannot draw images into a canvas');
  draw(context);
  const rgba = context.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
    data[q] = rgba[p];
    data[q + 1] = rgba[p + 1];
    data[q + 2] = rgba[p + 2];
  }
  return { width, height, data };
}

/** Decodes an image file with the browser's decoders, without colour management, scaled down when large. */
export async function decodeImageFile(file: Blob): Promise<RgbImage> {
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  try {
    const [width, height] = storedSize(bitmap.width, bitmap.height);
    return drawnPixels((context) => context.drawImage(bitmap, 0, 0, width, height), width, height);
  } finally {
    bitmap.close();
  }
}

/** The video's current frame. */
export function videoFrame(video: HTMLVideoElement): RgbImage {
  const [width, height] = storedSize(video.videoWidth, video.videoHeight);
  return drawnPixels((context) => context.drawImage(video, 0, 0, width, height), width, height);
}

/** A lossless PNG of the pixels. */
export async function encodePng(image: RgbImage): Promise<Uint8Array> {
  const canvas = new OffscreenCanvas(image.width, image.height);
  const context = canvas.getContext('2d');
  if (!context) throw new Error('this browser cannot draw images into a canvas');
  const rgba = new ImageData(image.width, image.height);
  for (let p = 0, q = 0; q < image.data.length; p += 4, q += 3) {
    rgba.data[p] = image.data[q];
    rgba.data[p + 1] = image.data[q + 1];
    rgba.data[p + 2] = image.data[q + 2];
    rgba.data[p + 3] = 255;
  }
  context.putImageData(rgba, 0, 0);
  return new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
}

export interface ClassImages {
  readonly name: string;
  readonly images: readonly RgbImage[];
}

export interface Split {
  readonly train: LabelledImage[];
  readonly test: LabelledImage[];
}

/**
 * Holds out `fraction` of each class's images (at least one of a class with two or more), chosen by
 * a seeded shuffle. Both parts list classes in order and each class's images in the order they were
 * added: the order of a folder dataset of them, so the CLI reads the same samples in the same order.
 */
export function splitImages(classes: readonly ClassImages[], fraction: number, seed: number): Split {
  const split: Split = { train: [], test: [] };
  const rng = new Rng(seed);
  classes.forEach(({ images }, label) => {
    const heldOutCount = images.length < 2 ? 0 : Math.max(1, Math.round(images.length * fraction));
    const heldOut = new Set(rng.permutation(images.length).slice(0, heldOutCount));
    images.forEach((image, index) => {
      (heldOut.has(index) ? split.test : split.train).push({ label, image });
    });
  });
  return split;
}

/** A class's folder name: its position first, so that sorted folders keep the page's class order. */
export function classFolder(name: string, label: number): string {
  const safe = name
    .trim()
    .replace(/[^\p{L}\p{N}_-]+/gu, '-')
    .replace(/^-+|-+$/g, '');
  return `${String(label + 1).padStart(2, '0')}-${safe || 'class'}`;
}

/** The split as a folder dataset (train/<class>/NNNN.png, test/<class>/NNNN.png) in a ZIP file, with a README. */
export async function datasetZip(classNames: readonly string[], split: Split, readme: string): Promise<Uint8Array> {
  const files: Record<string, Uint8Array> = { 'README.txt': strToU8(readme) };
  for (const [part, images] of Object.entries(split)) {
    const counts = classNames.map(() => 0);
    for (const { label, image } of images as LabelledImage[]) {
      const index = counts[label]++;
      files[`${part}/${classFolder(classNames[label], label)}/${String(index).padStart(4, '0')}.png`] = await encodePng(image);
    }
  }
  // PNGs are compressed already.
  return zipSync(files, { level: 0 });
}
