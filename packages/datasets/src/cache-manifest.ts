import { FEATURE_CACHE_FORMAT } from '@gradfeat/core';
import type { FeatureCacheManifest } from './cache.js';
import { DatasetFileError } from './errors.js';

const SHARD_FILE = /^shard-\d{5}\.bin$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** A row larger than this many values is no trunk output: it is a damaged sampleShape. */
const MAX_ROW_VALUES = 2 ** 28;

type Fields = Readonly<Record<string, unknown>>;

const isFields = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Checks a parsed manifest.json before anything is read on its word: the types, and the arithmetic
 * that ties its parts together (each shard's bytes are its rows times the row size, its targets one
 * per image, the shards contiguous over the source), so that a damaged or forged manifest can neither
 * make the reader allocate without bound nor open a file outside the cache. Errors name the manifest
 * and the field.
 */
export function checkManifest(path: string, value: unknown): FeatureCacheManifest {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new DatasetFileError(path, `${field}: expected ${expected}, got ${show(got)}`);
  };
  if (!isFields(value) || value.format !== FEATURE_CACHE_FORMAT || value.version !== 1) {
    const { format, version } = isFields(value) ? value : {};
    throw new DatasetFileError(
      path,
      `is not a version 1 gradfeat feature cache manifest (format ${show(format)}, version ${show(version)})`,
    );
  }
  if (!isFields(value.key)) fail('key', 'a mapping', value.key);
  const dtypeBytes = value.dtype === 'float32' ? 4 : value.dtype === 'float16' ? 2 : fail('dtype', "'float32' or 'float16'", value.dtype);
  const shape = value.sampleShape;
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => isCount(d) && d > 0)) {
    fail('sampleShape', 'a list of positive whole numbers', shape);
  }
  const rowValues = (shape as number[]).reduce((product, d) => product * d, 1);
  if (rowValues > MAX_ROW_VALUES) fail('sampleShape', `at most ${MAX_ROW_VALUES} values a row`, shape);
  const crops = value.cropsPerImage;
  if (!isCount(crops) || crops < 1) fail('cropsPerImage', 'a whole number ≥ 1', crops);
  const classNames = value.classNames;
  if (!Array.isArray(classNames) || classNames.length === 0 || !classNames.every((name) => typeof name === 'string')) {
    fail('classNames', 'a list of class names', classNames);
  }
  const classCount = (classNames as string[]).length;
  if (value.labelKind !== 'single-label' && value.labelKind !== 'multi-label')
    fail('labelKind', "'single-label' or 'multi-label'", value.labelKind);
  for (const field of ['sourceCount', 'rowsPerShard']) if (!isCount(value[field])) fail(field, 'a whole number ≥ 0', value[field]);
  if (typeof value.complete !== 'boolean') fail('complete', 'true or false', value.complete);
  if (!Array.isArray(value.shards)) fail('shards', 'a list', value.shards);
  // The shard plan (absent in caches from before it, whose shards follow each other without gaps).
  const plan = value.imagesPerShard as number | undefined;
  if (plan !== undefined && (!isCount(plan) || plan < 1)) fail('imagesPerShard', 'a whole number ≥ 1', plan);
  const sourceCount = value.sourceCount as number;
  const plannedShards = plan === undefined ? 0 : Math.ceil(sourceCount / plan);
  const written: number[] = [];
  const isClass = (c: unknown) => isCount(c) && c < classCount;
  const totals = { images: 0, rows: 0, skipped: 0 };
  let sourceEnd = 0;
  for (const [i, shard] of (value.shards as unknown[]).entries()) {
    const at = `shards[${i}]`;
    if (!isFields(shard)) fail(at, 'a mapping', shard);
    const entry = shard as Fields;
    if (typeof entry.file !== 'string' || !SHARD_FILE.test(entry.file)) fail(`${at}.file`, "a name like 'shard-00000.bin'", entry.file);
    for (const field of ['rows', 'images', 'sourceStart', 'sourceEnd', 'bytes'])
      if (!isCount(entry[field])) fail(`${at}.${field}`, 'a whole number ≥ 0', entry[field]);
    const images = entry.images as number;
    if (entry.rows !== images * (crops as number)) fail(`${at}.rows`, `${images * (crops as number)} (images × cropsPerImage)`, entry.rows);
    const bytes = (entry.rows as number) * rowValues * dtypeBytes;
    if (entry.bytes !== bytes) fail(`${at}.bytes`, `${bytes} (rows × row size × ${dtypeBytes})`, entry.bytes);
    if (typeof entry.sha256 !== 'string' || !SHA256.test(entry.sha256)) fail(`${at}.sha256`, 'a SHA-256 in hex', entry.sha256);
    const skipped = entry.skipped;
    if (
      !Array.isArray(skipped) ||
      !skipped.every((s) => isFields(s) && isCount(s.index) && typeof s.path === 'string' && typeof s.problem === 'string')
    ) {
      fail(`${at}.skipped`, 'a list of {index, path, problem}', skipped);
    }
    if (plan === undefined) {
      if (entry.sourceStart !== sourceEnd) fail(`${at}.sourceStart`, `${sourceEnd} (where the shard before ended)`, entry.sourceStart);
    } else {
      const index = Number((entry.file as string).slice(6, 11));
      if (index >= plannedShards || (written.length > 0 && index <= (written.at(-1) as number))) {
        fail(`${at}.file`, `shards of the plan (below ${plannedShards}) in ascending order, each once`, entry.file);
      }
      written.push(index);
      if (entry.sourceStart !== index * plan)
        fail(`${at}.sourceStart`, `${index * plan} (shard ${index} × imagesPerShard)`, entry.sourceStart);
      const planEnd = Math.min((index + 1) * plan, sourceCount);
      if (entry.sourceEnd !== planEnd) fail(`${at}.sourceEnd`, `${planEnd} (where shard ${index} of the plan ends)`, entry.sourceEnd);
    }
    sourceEnd = entry.sourceStart as number;
    if (entry.sourceEnd !== sourceEnd + images + (skipped as unknown[]).length) {
      fail(
        `${at}.sourceEnd`,
        `${sourceEnd + images + (skipped as unknown[]).length} (its start, images and skipped images)`,
        entry.sourceEnd,
      );
    }
    sourceEnd = entry.sourceEnd as number;
    const targets = entry.targets;
    const listsOfClasses = (lists: unknown) =>
      Array.isArray(lists) && lists.length === images && lists.every((l) => Array.isArray(l) && l.every(isClass));
    const validTargets =
      isFields(targets) &&
      (value.labelKind === 'single-label'
        ? Array.isArray(targets.labels) && targets.labels.length === images && targets.labels.every(isClass)
        : listsOfClasses(targets.positive) && listsOfClasses(targets.difficult));
    if (!validTargets) fail(`${at}.targets`, `one ${value.labelKind} target per image, classes below ${classCount}`, targets);
    totals.images += images;
    totals.rows += entry.rows as number;
    totals.skipped += (skipped as unknown[]).length;
  }
  const counts = value.counts;
  if (!isFields(counts) || counts.images !== totals.images || counts.rows !== totals.rows || counts.skipped !== totals.skipped) {
    fail('counts', `the shards' totals ${show(totals)}`, counts);
  }
  if (plan === undefined) {
    if (value.complete && sourceEnd !== sourceCount) fail('sourceCount', `${sourceEnd} (where the last shard ends)`, sourceCount);
  } else {
    const present = new Set(written);
    const missing = Array.from({ length: plannedShards }, (_, index) => index).filter((index) => !present.has(index));
    if (!Array.isArray(value.missingShards) || JSON.stringify(value.missingShards) !== JSON.stringify(missing)) {
      fail('missingShards', `${show(missing)} (the planned shards not in shards)`, value.missingShards);
    }
    if (value.complete !== (missing.length === 0))
      fail('complete', `${missing.length === 0} (missing shards: ${missing.length})`, value.complete);
  }
  return value as unknown as FeatureCacheManifest;
}
