import { type DecoderChoice, loadImage } from './decode.js';
import { DatasetFileError } from './errors.js';
import { seededRandom } from './random.js';
import { cropsPerImage, type TransformSpec, transformedShape, transformImage } from './transform.js';
import type { ImageRef } from './types.js';

/** Images to decode and transform, as sent to a worker thread. */
export interface DecodeJob {
  readonly items: readonly { readonly ref: ImageRef; readonly seed: number }[];
  readonly transform: TransformSpec;
  readonly decoder: DecoderChoice;
  /**
   * Where to write the rows: a buffer shared with the thread that posted the job, from this float
   * offset. Writing into memory that is already mapped, instead of a fresh array per job, saves most
   * of the cost of large outputs (a 224×224 image is 600 KB of floats).
   */
  readonly into?: { readonly buffer: SharedArrayBuffer; readonly offset: number };
  /** Largest image (in pixels) this job may decode; see decodePixelLimit. */
  readonly maxPixels: number;
}

/** A file that could not be read or decoded: its rows in the output are left zero. */
export interface DecodeFailure {
  readonly position: number;
  readonly path: string;
  readonly problem: string;
}

export interface DecodeResult {
  /** items × cropsPerImage rows of the transform's output shape. */
  readonly output: Float32Array;
  readonly failures: readonly DecodeFailure[];
}

/** Runs on a worker thread (or inline): bad files are reported, anything else is a bug and throws. */
export async function runDecodeJob(job: DecodeJob): Promise<DecodeResult> {
  // Not core's sizeOf: worker code stays free of @gradfeat/core so that workers start without loading it.
  const itemSize = cropsPerImage(job.transform) * transformedShape(job.transform).reduce((a, b) => a * b, 1);
  const output = job.into
    ? new Float32Array(job.into.buffer, job.into.offset * Float32Array.BYTES_PER_ELEMENT, job.items.length * itemSize)
    : new Float32Array(job.items.length * itemSize);
  const failures: DecodeFailure[] = [];
  for (const [position, { ref, seed }] of job.items.entries()) {
    try {
      const image = await loadImage(ref, job.decoder, job.maxPixels);
      transformImage(image, job.transform, seededRandom(seed), output, position * itemSize);
    } catch (error) {
      if (!(error instanceof DatasetFileError)) throw error;
      failures.push({ position, path: error.path, problem: error.problem });
    }
  }
  return { output, failures };
}
