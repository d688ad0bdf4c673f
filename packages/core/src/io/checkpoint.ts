import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { METHODS, type Method } from '../methods/programs.js';
import { formatShape, type HostTensor, sameShape, sizeOf } from '../tensor.js';
import type { OptimiserState } from '../train/optimisers.js';
import type { StepRecord, TrainState } from '../train/trainer.js';
import { atomicTempTarget, writeFileAtomic, writeJsonAtomic } from './atomic.js';

/**
 * On disk a checkpoint is a JSON index plus two raw little-endian float32 files (parameters,
 * optimiser slots) whose names are unique per save. A save writes the new binaries first and then
 * atomically replaces the index, so a crash at any point leaves the previous index and the files it
 * names intact; binaries of older saves are removed only after the new index is in place.
 */
export const CHECKPOINT_INDEX = 'checkpoint.json';
const FORMAT = 'gradfeat-checkpoint';
const VERSION = 1;
const BINARY_NAME = /^(params|optimiser)-s\d+-[0-9a-f]{8}\.f32$/;

interface BinaryFile {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

interface ParamEntry {
  readonly name: string;
  readonly shape: number[];
  /** Byte offset in the parameters file. */
  readonly offset: number;
}

interface SlotEntry {
  readonly name: string;
  /** Position in the optimiser's per-parameter list (SGD: velocity; Adam: m, v). */
  readonly slot: number;
  readonly length: number;
  /** Byte offset in the optimiser file. */
  readonly offset: number;
}

interface CheckpointIndex {
  readonly format: typeof FORMAT;
  readonly version: typeof VERSION;
  readonly method: Method;
  readonly step: number;
  readonly epoch: number;
  readonly batchInEpoch: number;
  readonly epochRng: number[];
  readonly history: StepRecord[];
  readonly seconds: number;
  readonly files: { readonly params: BinaryFile; readonly optimiser: BinaryFile };
  readonly params: ParamEntry[];
  readonly optimiser: SlotEntry[];
}

/** Whether `dir` holds a saved training state. */
export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, CHECKPOINT_INDEX));
}

/** Writes `state` to `dir` (created if needed), replacing the checkpoint there without ever losing it. */
export async function saveTrainState(dir: string, state: TrainState): Promise<void> {
  requireLittleEndian();
  for (const [name, tensor] of state.params) {
    if (tensor.data.length !== sizeOf(tensor.shape)) {
      throw new Error(`cannot checkpoint parameter '${name}': ${tensor.data.length} values for shape ${formatShape(tensor.shape)}`);
    }
  }
  const paramData = [...state.params.values()].map((tensor) => tensor.data);
  const paramOffsets = byteOffsets(paramData);
  const params: ParamEntry[] = [...state.params].map(([name, tensor], i) => ({ name, shape: [...tensor.shape], offset: paramOffsets[i] }));
  const slotList = Object.entries(state.optimiser).flatMap(([name, values]) => values.map((data, slot) => ({ name, slot, data })));
  const slotData = slotList.map(({ data }) => data);
  const slotOffsets = byteOffsets(slotData);
  const slots: SlotEntry[] = slotList.map(({ name, slot, data }, i) => ({ name, slot, length: data.length, offset: slotOffsets[i] }));

  await mkdir(dir, { recursive: true });
  const tag = `s${state.step}-${randomBytes(4).toString('hex')}`;
  const files = {
    params: await writeBinary(dir, `params-${tag}.f32`, paramData),
    optimiser: await writeBinary(dir, `optimiser-${tag}.f32`, slotData),
  };
  const index: CheckpointIndex = {
    format: FORMAT,
    version: VERSION,
    method: state.method,
    step: state.step,
    epoch: state.epoch,
    batchInEpoch: state.batchInEpoch,
    epochRng: [...state.epochRng],
    history: state.history,
    seconds: state.seconds,
    files,
    params,
    optimiser: slots,
  };
  await writeJsonAtomic(join(dir, CHECKPOINT_INDEX), index);
  await removeStaleFiles(dir, new Set([files.params.file, files.optimiser.file]));
}

/**
 * Reads the checkpoint in `dir` back, bit for bit. With `expectedParams` (what a fresh run of the
 * method starts from), the names and shapes must match, so a checkpoint of another model or cut is
 * refused instead of failing deep inside the backend.
 */
export async function loadTrainState(dir: string, method: Method, expectedParams?: ReadonlyMap<string, HostTensor>): Promise<TrainState> {
  requireLittleEndian();
  const indexPath = join(dir, CHECKPOINT_INDEX);
  const index = parseIndex(indexPath, await readText(indexPath));
  if (index.method !== method) throw new Error(`${indexPath}: holds a '${index.method}' checkpoint, not '${method}'`);

  const paramBytes = await readBinary(dir, index.files.params);
  const params = new Map<string, HostTensor>();
  for (const entry of index.params) {
    params.set(entry.name, { shape: entry.shape, data: floatsAt(paramBytes, entry.offset, sizeOf(entry.shape), indexPath, entry.name) });
  }
  const slotBytes = await readBinary(dir, index.files.optimiser);
  const optimiser: OptimiserState = {};
  for (const entry of index.optimiser) {
    optimiser[entry.name] ??= [];
    if (entry.slot !== optimiser[entry.name].length) {
      throw new Error(`${indexPath}: optimiser slot ${entry.slot} of '${entry.name}' is out of order; the index is damaged`);
    }
    optimiser[entry.name].push(floatsAt(slotBytes, entry.offset, entry.length, indexPath, entry.name));
  }
  if (expectedParams) checkParamsMatch(indexPath, params, expectedParams);
  return {
    method,
    step: index.step,
    epoch: index.epoch,
    batchInEpoch: index.batchInEpoch,
    epochRng: index.epochRng,
    params,
    optimiser,
    history: index.history,
    seconds: index.seconds,
  };
}

function requireLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('checkpoints store little-endian float32; this big-endian machine cannot read or write them');
}

/** Where each array starts when they are stored back to back. */
function byteOffsets(arrays: readonly Float32Array[]): number[] {
  let offset = 0;
  return arrays.map((array) => {
    const start = offset;
    offset += array.byteLength;
    return start;
  });
}

async function writeBinary(dir: string, file: string, parts: readonly Float32Array[]): Promise<BinaryFile> {
  const chunks = parts.map((part) => new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  await writeFileAtomic(join(dir, file), chunks);
  return { file, bytes: chunks.reduce((total, chunk) => total + chunk.byteLength, 0), sha256: hash.digest('hex') };
}

/** Binaries of earlier saves, and temp files of interrupted ones; never anything gradfeat did not write. */
async function removeStaleFiles(dir: string, keep: ReadonlySet<string>): Promise<void> {
  for (const name of await readdir(dir)) {
    const target = atomicTempTarget(name) ?? name;
    const stale = BINARY_NAME.test(target) ? !keep.has(name) : target === CHECKPOINT_INDEX && name !== CHECKPOINT_INDEX;
    if (stale) await rm(join(dir, name), { force: true });
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${path}: no checkpoint here (the file does not exist)`);
    throw error;
  }
}

async function readBinary(dir: string, expected: BinaryFile): Promise<Buffer> {
  const path = join(dir, expected.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${path}: missing, but ${CHECKPOINT_INDEX} refers to it`);
    throw error;
  }
  if (bytes.byteLength !== expected.bytes) {
    throw new Error(`${path}: ${bytes.byteLength} bytes, ${CHECKPOINT_INDEX} expects ${expected.bytes}; the file is truncated or damaged`);
  }
  if (createHash('sha256').update(bytes).digest('hex') !== expected.sha256) {
    throw new Error(`${path}: contents do not match the checksum in ${CHECKPOINT_INDEX}; the file is damaged`);
  }
  return bytes;
}

/** A copy (so the result is aligned and owns its memory) of `count` floats at `offset`. */
function floatsAt(bytes: Buffer, offset: number, count: number, indexPath: string, name: string): Float32Array {
  if (offset % 4 !== 0 || offset + count * 4 > bytes.byteLength) {
    throw new Error(`${indexPath}: '${name}' at byte ${offset} with ${count} values lies outside its ${bytes.byteLength}-byte file`);
  }
  const start = bytes.byteOffset + offset;
  return new Float32Array(bytes.buffer.slice(start, start + count * 4));
}

function checkParamsMatch(indexPath: string, stored: ReadonlyMap<string, HostTensor>, expected: ReadonlyMap<string, HostTensor>): void {
  for (const [name, tensor] of expected) {
    const found = stored.get(name);
    if (!found) throw new Error(`${indexPath}: has no parameter '${name}'; the checkpoint is from another model or cut`);
    if (!sameShape(found.shape, tensor.shape)) {
      throw new Error(
        `${indexPath}: parameter '${name}' has shape ${formatShape(found.shape)}, the model needs ${formatShape(tensor.shape)}`,
      );
    }
  }
  for (const name of stored.keys()) {
    if (!expected.has(name))
      throw new Error(`${indexPath}: has a parameter '${name}' the model does not; the checkpoint is from another model or cut`);
  }
}

function parseIndex(path: string, text: string): CheckpointIndex {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message}); the checkpoint index is damaged`);
  }
  const problem = indexProblem(value);
  if (problem) throw new Error(`${path}: ${problem}`);
  return value as CheckpointIndex;
}

type Fields = Readonly<Record<string, unknown>>;

const isFields = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;
const isUint32 = (value: unknown): boolean => isCount(value) && value < 2 ** 32;

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function listProblem(index: Fields, field: string, description: string, valid: (entry: Fields) => boolean): string | undefined {
  const list = index[field];
  if (!Array.isArray(list)) return `${field}: expected a list of ${description}, got ${show(list)}`;
  const bad = list.findIndex((entry) => !isFields(entry) || !valid(entry));
  return bad < 0 ? undefined : `${field}[${bad}]: expected ${description}, got ${show(list[bad])}`;
}

/** What is wrong with a parsed index, or undefined if it is well-formed. */
function indexProblem(index: unknown): string | undefined {
  if (!isFields(index) || index.format !== FORMAT) return `not a ${FORMAT} index`;
  if (index.version !== VERSION) return `format version ${show(index.version)}; this gradfeat reads version ${VERSION}`;
  if (!METHODS.includes(index.method as Method)) return `method: expected one of ${METHODS.join(', ')}, got ${show(index.method)}`;
  for (const field of ['step', 'epoch', 'batchInEpoch']) {
    if (!isCount(index[field])) return `${field}: expected a whole number ≥ 0, got ${show(index[field])}`;
  }
  if (typeof index.seconds !== 'number' || !Number.isFinite(index.seconds) || index.seconds < 0) {
    return `seconds: expected the training time so far (a number ≥ 0), got ${show(index.seconds)}`;
  }
  if (!Array.isArray(index.epochRng) || index.epochRng.length !== 4 || !index.epochRng.every(isUint32)) {
    return `epochRng: expected four unsigned 32-bit integers, got ${show(index.epochRng)}`;
  }
  const files = isFields(index.files) ? index.files : {};
  for (const kind of ['params', 'optimiser']) {
    const file = files[kind];
    const valid =
      isFields(file) &&
      typeof file.file === 'string' &&
      BINARY_NAME.test(file.file) &&
      isCount(file.bytes) &&
      typeof file.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(file.sha256);
    if (!valid) return `files.${kind}: expected {file, bytes, sha256} naming a checkpoint binary, got ${show(file)}`;
  }
  return (
    listProblem(index, 'history', '{step, epoch, loss}', (r) => isCount(r.step) && isCount(r.epoch) && Number.isFinite(r.loss)) ??
    listProblem(
      index,
      'params',
      '{name, shape, offset}',
      (e) => typeof e.name === 'string' && Array.isArray(e.shape) && e.shape.every(isCount) && isCount(e.offset),
    ) ??
    listProblem(
      index,
      'optimiser',
      '{name, slot, length, offset}',
      (e) => typeof e.name === 'string' && isCount(e.slot) && isCount(e.length) && isCount(e.offset),
    )
  );
}
