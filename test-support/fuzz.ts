import fc from 'fast-check';
import { expect } from 'vitest';
import { type CallOutcome, describeOutcome, mebibytes } from './isolated.js';

/**
 * The fuzz campaign's common parts: mutations of valid seed files (bytes or JSON), and the one
 * property every parser must have: it loads the input, or fails with gradfeat's own error naming the
 * file and the problem; never a native crash, a hang, a programming error or an allocation beyond a
 * bound derived from the input's size. Inputs run in a child process (test-support/isolated.ts).
 */

/**
 * Every fuzz property runs from this seed, with a fixed number of runs, so a run is reproducible and
 * its cost fixed. GRADFEAT_FUZZ_SEED and GRADFEAT_FUZZ_SCALE (a multiplier of the runs) widen the
 * campaign by hand; CI runs the defaults.
 */
// biome-ignore lint/suspicious/noUndeclaredEnvVars: tests run under vitest directly, not as turbo tasks.
export const SEED = Number(process.env.GRADFEAT_FUZZ_SEED ?? 2020);

export function runs(runs: number): number {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: as above.
  return Math.max(1, Math.round(runs * Number(process.env.GRADFEAT_FUZZ_SCALE ?? 1)));
}
/**
 * "A few seconds": a call on any input here takes milliseconds; the margin is for a machine shared
 * with other work (the whole suite runs in parallel on two cores), so that only a real hang trips it.
 */
export const CALL_TIMEOUT_MS = 10_000;
/** Peak-memory noise of a call that allocates nothing much: lazily loaded code, heap growth, libvips' caches. */
export const ALLOCATION_SLACK_BYTES = 96 * 2 ** 20;

/** Integers at the edges of the widths file formats use, and sizes near limits (8192² pixels is 2²⁶). */
const EDGE_INTEGERS = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 8192, 20_000, 0x7fffffff, 0x80000000, 0xffffffff];

/** A field of a seed file that a format-aware mutation may set: a size, a count, a length. */
export interface SeedField {
  readonly offset: number;
  readonly bytes: 1 | 2 | 4;
  readonly littleEndian?: boolean;
}

/**
 * A valid file the mutations start from: the fields worth hitting directly (header sizes, counts),
 * in groups set together (a width with its height), and how to make a mutated file consistent again
 * where a checksum would otherwise reject it before the interesting part is read (PNG chunk CRCs).
 */
export interface FuzzSeed {
  readonly bytes: Uint8Array;
  readonly fields?: readonly (readonly SeedField[])[];
  readonly repair?: (bytes: Uint8Array) => Uint8Array;
}

/** A byte-level mutation; positions are fractions of the length, so they apply to any file and shrink to its start. */
export type ByteMutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'byte'; readonly at: number; readonly value: number }
  | { readonly kind: 'u32'; readonly at: number; readonly value: number; readonly littleEndian: boolean }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: 'repeat'; readonly at: number; readonly length: number; readonly times: number }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'field'; readonly field: number; readonly value: number };

const position = fc.double({ min: 0, max: 1, noNaN: true });

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('byte' as const), at: position, value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xfe, 0xff) }),
  fc.record({ kind: fc.constant('u32' as const), at: position, value: fc.constantFrom(...EDGE_INTEGERS), littleEndian: fc.boolean() }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({
    kind: fc.constant('repeat' as const),
    at: position,
    length: fc.integer({ min: 1, max: 512 }),
    times: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 256 }) }),
  // Weighted up: sizes and counts in headers are where a few bytes claim gigabytes.
  ...Array.from({ length: 3 }, () =>
    fc.record({ kind: fc.constant('field' as const), field: position, value: fc.constantFrom(...EDGE_INTEGERS) }),
  ),
);

export function applyByteMutation(bytes: Uint8Array, mutation: ByteMutation, fields: FuzzSeed['fields'] = []): Uint8Array {
  if (mutation.kind === 'field') {
    const group = fields[Math.min(fields.length - 1, Math.floor(mutation.field * fields.length))] ?? [];
    const out = new Uint8Array(bytes);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    for (const field of group) {
      if (field.offset + field.bytes > out.length) continue;
      const value = mutation.value % 2 ** (8 * field.bytes);
      if (field.bytes === 1) view.setUint8(field.offset, value);
      else if (field.bytes === 2) view.setUint16(field.offset, value, field.littleEndian);
      else view.setUint32(field.offset, value, field.littleEndian);
    }
    return out;
  }
  const at = Math.min(bytes.length, Math.floor(mutation.at * bytes.length));
  // A copy, never a view: Buffer.prototype.slice would alias the seed.
  const copy = () => new Uint8Array(bytes);
  switch (mutation.kind) {
    case 'flip': {
      if (at >= bytes.length) return bytes;
      const out = copy();
      out[at] ^= 1 << mutation.bit;
      return out;
    }
    case 'byte': {
      if (at >= bytes.length) return bytes;
      const out = copy();
      out[at] = mutation.value;
      return out;
    }
    case 'u32': {
      const out = copy();
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
      if (at + 4 <= out.length) view.setUint32(at, mutation.value, mutation.littleEndian);
      return out;
    }
    case 'truncate':
      return new Uint8Array(bytes.subarray(0, at));
    case 'insert':
      return concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
    case 'repeat': {
      const slice = bytes.subarray(at, at + mutation.length);
      return concat([bytes.subarray(0, at), ...Array.from({ length: mutation.times + 1 }, () => slice), bytes.subarray(at + slice.length)]);
    }
    case 'delete':
      return concat([bytes.subarray(0, at), bytes.subarray(at + mutation.length)]);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export interface MutatedBytes {
  readonly seed: number;
  readonly mutations: readonly ByteMutation[];
  /** Whether the seed's `repair` runs after the mutations. */
  readonly repaired: boolean;
}

/** 1–`most` byte mutations applied in turn to one of `seeds`; the mutations are data, so counterexamples read well. */
export function mutatedBytes(seeds: readonly FuzzSeed[], most = 4): fc.Arbitrary<MutatedBytes> {
  return fc.record({
    seed: fc.nat({ max: seeds.length - 1 }),
    mutations: fc.array(byteMutation, { minLength: 1, maxLength: most }),
    repaired: fc.boolean(),
  });
}

export function applyByteMutations(seeds: readonly FuzzSeed[], input: MutatedBytes): Uint8Array {
  const { bytes, fields, repair } = seeds[input.seed];
  const mutated = input.mutations.reduce((current, mutation) => applyByteMutation(current, mutation, fields), bytes);
  return input.repaired && repair ? repair(mutated) : mutated;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** JSON values that break readers: wrong types, extremes, paths that leave a folder, long strings, deep nesting. */
export const hostileJsonValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    0,
    -1,
    0.5,
    2 ** 31 - 1,
    2 ** 32,
    2 ** 53,
    1e308,
    -1e308,
    '',
    '../../outside.bin',
    '/dev/zero',
    'x'.repeat(10_000),
    [],
    {},
    [1e9],
    [-1],
    [2 ** 31, 2 ** 31],
    [0, 0, 0, 0, 0, 0, 0, 0],
  ),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
);

/** A JSON mutation: a path (as fractions choosing among the value's nodes), and what to do there. */
export type JsonMutation =
  | { readonly kind: 'set'; readonly at: number; readonly value: Json }
  | { readonly kind: 'delete'; readonly at: number }
  | { readonly kind: 'swap'; readonly at: number; readonly from: number }
  | { readonly kind: 'scale'; readonly at: number; readonly factor: number };

const jsonMutation: fc.Arbitrary<JsonMutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: position, value: hostileJsonValue }),
  fc.record({ kind: fc.constant('delete' as const), at: position }),
  fc.record({ kind: fc.constant('swap' as const), at: position, from: position }),
  fc.record({ kind: fc.constant('scale' as const), at: position, factor: fc.constantFrom(-1, 0, 2, 1000, 2 ** 20) }),
);

export function mutatedJson(seeds: readonly unknown[], most = 3): fc.Arbitrary<{ seed: number; mutations: JsonMutation[] }> {
  return fc.record({ seed: fc.nat({ max: seeds.length - 1 }), mutations: fc.array(jsonMutation, { minLength: 1, maxLength: most }) });
}

export function applyJsonMutations(seeds: readonly unknown[], input: { seed: number; mutations: readonly JsonMutation[] }): unknown {
  let value = structuredClone(seeds[input.seed]) as Json;
  for (const mutation of input.mutations) value = applyJsonMutation(value, mutation);
  return value;
}

/** Every node of a JSON value, as the path of keys leading to it (the root is []). */
function jsonPaths(value: Json, path: (string | number)[] = [], into: (string | number)[][] = []): (string | number)[][] {
  into.push(path);
  if (Array.isArray(value)) for (const [i, item] of value.entries()) jsonPaths(item, [...path, i], into);
  else if (value !== null && typeof value === 'object')
    for (const [key, item] of Object.entries(value)) jsonPaths(item, [...path, key], into);
  return into;
}

function applyJsonMutation(root: Json, mutation: JsonMutation): Json {
  const paths = jsonPaths(root);
  const pick = (at: number) => paths[Math.min(paths.length - 1, Math.floor(at * paths.length))];
  const path = pick(mutation.at);
  const get = (p: (string | number)[]) => p.reduce<Json>((node, key) => (node as Record<string, Json>)[key as string], root);
  const replace = (value: Json | undefined): Json => {
    if (path.length === 0) return value ?? null;
    const parent = get(path.slice(0, -1)) as Record<string | number, Json> | Json[];
    const key = path[path.length - 1];
    if (value === undefined) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, Json>)[key as string];
    } else (parent as Record<string | number, Json>)[key] = value;
    return root;
  };
  switch (mutation.kind) {
    case 'set':
      return replace(structuredClone(mutation.value));
    case 'delete':
      return replace(undefined);
    case 'swap':
      return replace(structuredClone(get(pick(mutation.from))));
    case 'scale': {
      // Among the numbers only: sizes, counts and shapes are where a small edit claims a lot.
      const numbers = paths.filter((p) => typeof get(p) === 'number');
      if (numbers.length === 0) return root;
      const target = numbers[Math.min(numbers.length - 1, Math.floor(mutation.at * numbers.length))];
      if (target.length === 0) return (root as number) * mutation.factor;
      const parent = get(target.slice(0, -1)) as Record<string | number, Json>;
      parent[target[target.length - 1]] = (get(target) as number) * mutation.factor;
      return root;
    }
  }
}

export interface CleanOutcomeRules {
  /** What a thrown error must name (any one of them): the file or folder under test. */
  readonly names: readonly string[];
  /** Error classes (by name) that are gradfeat's own for this input. */
  readonly errors: readonly string[];
  /** The most the call may raise the child's peak memory. */
  readonly maxPeakGrowthBytes: number;
  /**
   * The code under test wraps a third-party decoder's failures (jpeg-js, pngjs, libvips) in its own
   * error naming the file: their classes in the cause chain say nothing about gradfeat's code.
   */
  readonly wrapsDecoderErrors?: boolean;
}

/** Errors that mean a bug or an unbounded resource, wherever they are in the cause chain. */
function isProgrammingError(error: { readonly name: string; readonly message: string }): boolean {
  return (
    error.name === 'TypeError' ||
    error.name === 'ReferenceError' ||
    /Maximum call stack|Invalid (typed )?array length|allocation failed|out of memory|Invalid string length/i.test(error.message)
  );
}

/**
 * Asserts the campaign's property for one input: it loaded, or it failed with gradfeat's own error
 * naming the file; in any case without a crash, a hang, a programming error or too much memory.
 */
export function expectClean(outcome: CallOutcome, rules: CleanOutcomeRules, input: string): void {
  const what = `${input}: ${describeOutcome(outcome)}`;
  expect(['returned', 'threw'], `${what} (a native crash or a hang)`).toContain(outcome.kind);
  if (outcome.kind !== 'returned' && outcome.kind !== 'threw') return;
  expect(
    outcome.peakGrowthBytes,
    `${what}: allocated more than ${mebibytes(rules.maxPeakGrowthBytes)}, the bound for this input`,
  ).toBeLessThanOrEqual(rules.maxPeakGrowthBytes);
  if (outcome.kind === 'returned') return;
  const { error } = outcome;
  expect(rules.errors, `${what}: not gradfeat's own error`).toContain(error.name);
  const checked = rules.wrapsDecoderErrors ? [error] : [error, ...error.causes];
  expect(checked.some(isProgrammingError), `${what}: a programming error or an unbounded resource`).toBe(false);
  expect(
    rules.names.some((name) => error.message.includes(name)),
    `${what}: the error should name ${rules.names.join(' or ')}`,
  ).toBe(true);
}
