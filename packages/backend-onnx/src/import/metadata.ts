import type { ModelMetadata, Preprocessing } from '@gradfeat/core/engine';

/** metadata_props keys gradfeat reads; both hold JSON. */
export const PREPROCESSING_KEY = 'preprocessing';
/** The metadata_props key of a model's class names (a JSON array of strings). */
export const CLASS_NAMES_KEY = 'class_names';

function parseJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`metadata_props '${key}' is not valid JSON (${(error as Error).message})`, { cause: error });
  }
}

function isNumberArray(value: unknown, length?: number): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number') && (length === undefined || value.length === length);
}

/** Checks a preprocessing object field by field, so a bad file says which field is wrong. */
function preprocessing(value: unknown): Preprocessing {
  const fail = (field: string, expected: string): never => {
    throw new Error(`metadata_props '${PREPROCESSING_KEY}': field '${field}' must be ${expected}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('(root)', 'a JSON object');
  const fields = value as Record<string, unknown>;
  const known = ['mean', 'std', 'scale', 'offset', 'size', 'sourceLayout'];
  for (const field of Object.keys(fields)) if (!known.includes(field)) fail(field, `one of ${known.join(', ')} (unknown field)`);
  if (fields.mean !== undefined && !isNumberArray(fields.mean, 3)) fail('mean', 'three numbers (R, G, B)');
  if (fields.std !== undefined && !isNumberArray(fields.std, 3)) fail('std', 'three numbers (R, G, B)');
  if (fields.scale !== undefined && typeof fields.scale !== 'number') fail('scale', 'a number');
  if (fields.offset !== undefined && typeof fields.offset !== 'number') fail('offset', 'a number');
  if (fields.size !== undefined && !isNumberArray(fields.size, 2)) fail('size', 'two numbers [height, width]');
  if (fields.sourceLayout !== undefined && fields.sourceLayout !== 'NCHW' && fields.sourceLayout !== 'NHWC')
    fail('sourceLayout', "'NCHW' or 'NHWC'");
  return fields as Preprocessing;
}

/**
 * The model's metadata: where it came from, and preprocessing and class names only when the file's
 * metadata_props state them (as JSON under 'preprocessing' and 'class_names').
 */
export function modelMetadata(source: string | undefined, props: ReadonlyMap<string, string>): ModelMetadata {
  const preprocessingText = props.get(PREPROCESSING_KEY);
  const classNamesText = props.get(CLASS_NAMES_KEY);
  const classNames = classNamesText === undefined ? undefined : parseJson(CLASS_NAMES_KEY, classNamesText);
  if (classNames !== undefined && !(Array.isArray(classNames) && classNames.every((c) => typeof c === 'string'))) {
    throw new Error(`metadata_props '${CLASS_NAMES_KEY}' must be a JSON array of strings`);
  }
  return {
    ...(source === undefined ? {} : { source }),
    ...(preprocessingText === undefined ? {} : { preprocessing: preprocessing(parseJson(PREPROCESSING_KEY, preprocessingText)) }),
    ...(classNames === undefined ? {} : { classNames: classNames as string[] }),
  };
}
