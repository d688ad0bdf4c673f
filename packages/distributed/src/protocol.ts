import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { graphFingerprint, type LinearisedModel } from '@gradfeat/core';
import type { BlobRef } from './blobs.js';

/** The version of gradfeat this process runs; jobs from a coordinator of another version are refused. */
export const GRADFEAT_VERSION: string = createRequire(import.meta.url)('../package.json').version;

/** The BullMQ queue every coordinator sends to and every worker takes from. */
export const QUEUE = 'gradfeat';

/** Job names: writes one cache shard. */
export const SHARD_JOB = 'cache-shard';
/** Loss and gradient sums over part of a batch. */
export const GRADIENT_JOB = 'gradient-sums';

/** What every job carries so that any worker can run it, or refuse it with a reason. */
export interface JobContext {
  /** The coordinator's gradfeat version. */
  readonly version: string;
  /** The run's settings as the coordinator resolved them: what a worker prepares its model and data from. */
  readonly config: unknown;
  /** SHA-256 of `config`; workers keep one prepared model per fingerprint. */
  readonly configFingerprint: string;
  /** The prepared model's fingerprint (see modelFingerprint): a worker whose files give another model refuses. */
  readonly modelFingerprint: string;
  /** The coordinator's session: jobs of an earlier (killed) session of the same run are dropped. */
  readonly session: string;
  /** Identifies the run (its directory), for cleaning up its jobs. */
  readonly run: string;
  /** A directory on the shared storage for blobs too large for Redis (parameters, gradient sums). */
  readonly blobDirectory: string;
}

/** One planned shard of a feature cache on the shared storage. */
export interface ShardJobData {
  readonly context: JobContext;
  /** Which cache of the run (the worker resolves it from the config), e.g. { cache: 'cut', split: 'train' }. */
  readonly fill: unknown;
  readonly directory: string;
  readonly index: number;
}

/** Training rows: a range [start, end) or a list. */
export type RowSet = { readonly start: number; readonly end: number } | readonly number[];

/** Loss and gradient sums of one method over some training rows at one version of the parameters. */
export interface GradientJobData {
  readonly context: JobContext;
  /** Which training data (the worker resolves it from the config), e.g. { method: 'full', point: true }. */
  readonly training: unknown;
  /** ω̄, the frozen classifier of the gradient term. */
  readonly omegaBar: BlobRef;
  readonly params: BlobRef;
  /** The parameters' version: the step (or L-BFGS evaluation) they belong to. */
  readonly version: number;
  readonly rows: RowSet;
  /** Rows per batch the worker runs; chunk boundaries are the same as in a local run. */
  readonly chunk: number;
}

/** What a gradient job returns: its rows' summed loss, and where its gradient sums are. */
export interface GradientJobResult {
  readonly loss: number;
  /** float64 sums per trainable. */
  readonly grads: BlobRef;
}

/** Rows as a range when they are consecutive (the usual case), else as the list. */
export function encodeRows(rows: readonly number[]): RowSet {
  const consecutive = rows.every((row, i) => row === rows[0] + i);
  return consecutive && rows.length > 0 ? { start: rows[0], end: rows[0] + rows.length } : rows;
}

function isRowList(rows: RowSet): rows is readonly number[] {
  return Array.isArray(rows);
}

/** The row indices an encodeRows value stands for. */
export function decodeRows(rows: RowSet): readonly number[] {
  if (isRowList(rows)) return rows;
  return Array.from({ length: rows.end - rows.start }, (_, i) => rows.start + i);
}

/** Hex SHA-256 of a string (fingerprints of configs and models). */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Identifies a prepared model: its trunk, head (and the ablation's other head), coordinates and cut. */
export function modelFingerprint(model: LinearisedModel): string {
  return sha256(
    JSON.stringify({
      trunk: graphFingerprint(model.trunk),
      head: graphFingerprint(model.head),
      gradientTermHead: model.gradientTermHead && graphFingerprint(model.gradientTermHead),
      scales: [...model.scales],
      finetuneScales: [...model.finetuneScales],
      cut: model.cut,
      features: model.features,
    }),
  );
}
