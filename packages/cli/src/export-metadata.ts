import type { Method, Parametrisation } from '@gradfeat/core';
import { GRADFEAT_VERSION } from './version.js';

/** The metadata key under which `gradfeat export` describes what it wrote (JSON). */
export const EXPORT_KEY = 'gradfeat';

/** What a gradfeat export says about itself, beside the preprocessing and class names. */
export interface ExportDescription {
  /** The gradfeat version that wrote the file. */
  readonly version: string;
  readonly method: Method;
  /** The node θ1 ends at in the source model. */
  readonly cut: string;
  /** Values θ2 has (its Conv2D and Dense weights and biases). */
  readonly theta2Size: number;
  /** Coordinates of θ2, w2 and the θ2 of fine-tuning: effective = stored × scale (see `scales`). */
  readonly parametrisation: Parametrisation;
  /** The pre-trained model the run started from. */
  readonly sourceModel: string;
  /** The run directory it was exported from. */
  readonly run: string;
  /** Test-time image preparation beyond the model's preprocessing. */
  readonly testCrop: 'center' | 'ten-crop';
  readonly resizeShorter?: number;
}

export function describeExport(fields: Omit<ExportDescription, 'version'>): ExportDescription {
  return { version: GRADFEAT_VERSION, ...fields };
}

const METHODS_TEXT = ['activation', 'gradient', 'full', 'finetune'];

/** Checks a file's description field by field, so a hand-edited file says which field is wrong. */
export function parseExportDescription(text: string, source: string): ExportDescription {
  const fail = (problem: string): never => {
    throw new Error(`${source}: metadata '${EXPORT_KEY}' ${problem}`);
  };
  let value: Record<string, unknown> = {};
  try {
    value = JSON.parse(text);
  } catch (error) {
    fail(`is not JSON (${(error as Error).message})`);
  }
  const expect = (field: string, ok: (v: unknown) => boolean, what: string) => {
    if (!ok(value[field])) fail(`field '${field}' must be ${what}, got ${JSON.stringify(value[field])}`);
  };
  const isString = (v: unknown) => typeof v === 'string';
  expect('version', isString, 'a string');
  expect('method', (v) => METHODS_TEXT.includes(v as string), METHODS_TEXT.join(' | '));
  expect('cut', isString, 'a string');
  expect('theta2Size', (v) => Number.isInteger(v), 'a whole number');
  expect('parametrisation', (v) => v === 'ntk' || v === 'standard', "'ntk' or 'standard'");
  expect('sourceModel', isString, 'a string');
  expect('run', isString, 'a string');
  expect('testCrop', (v) => v === 'center' || v === 'ten-crop', "'center' or 'ten-crop'");
  expect('resizeShorter', (v) => v === undefined || Number.isInteger(v), 'a whole number when present');
  return value as unknown as ExportDescription;
}
