import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { MethodResult } from '../methods/compare.js';
import type { Method } from '../methods/programs.js';
import { type LossPlotOptions, lossCurvesSvg } from '../report/loss-curves.js';
import { markdownReport, type ReportContext } from '../report/markdown.js';
import type { HostTensor } from '../tensor.js';
import type { TrainState } from '../train/trainer.js';
import { writeFileAtomic, writeJsonAtomic } from './atomic.js';
import { hasCheckpoint, loadTrainState, saveTrainState } from './checkpoint.js';
import { LOCK_FILE } from './directory-lock.js';
import { isFeatureCacheRoot } from './feature-cache-files.js';

/** The run directory's config file name. */
export const RUN_CONFIG_FILE = 'config.json';
/** The default feature-cache folder inside a run directory. */
export const CACHE_DIR = 'cache';

/** The result files a run directory holds. */
export interface ResultFiles {
  readonly metrics: string;
  readonly report: string;
  readonly curves: string;
}

/** Options of `RunDirectory.writeResults`. */
export interface WriteResultsOptions {
  /** More fields for metrics.json (timings, dataset sizes, …). */
  readonly extra?: Readonly<Record<string, unknown>>;
  readonly plot?: LossPlotOptions;
}

/**
 * One run's directory: the resolved config (config.json), a checkpoint per method
 * (checkpoints/<method>/) and the results (metrics.json, report.md, curves.svg). Every file is
 * written atomically. `Config` is whatever JSON the caller resolved; this class only stores and
 * compares it.
 */
export class RunDirectory<Config = unknown> {
  private constructor(
    /** Absolute path of the directory. */
    readonly path: string,
    readonly config: Config,
  ) {}

  /**
   * Starts a run in `path`: a new or empty directory, or one holding a run with the same config
   * (running it again replaces its results). A directory with other files, or with another config,
   * is refused so that nothing of another run or of the user's is overwritten; `mayChange` names
   * the config fields (dotted paths) that may differ from the stored ones, e.g. a resumed run's
   * learning rate.
   */
  static async create<Config>(
    path: string,
    config: Config,
    options: { readonly mayChange?: (field: string) => boolean } = {},
  ): Promise<RunDirectory<Config>> {
    const dir = resolve(path);
    const configPath = join(dir, RUN_CONFIG_FILE);
    if (await RunDirectory.holdsRun(dir)) {
      const differences = differingFields(await readConfig(configPath), JSON.parse(JSON.stringify(config)))
        .filter(({ field }) => !options.mayChange?.(field))
        .map(({ field, stored, wanted }) => `${field}: ${stored} there, ${wanted} now`);
      if (differences.length > 0) {
        const shown = differences.length > 5 ? [...differences.slice(0, 5), `${differences.length - 5} more`] : differences;
        throw new Error(`${dir}: holds a run with a different config (${shown.join('; ')}); resume that run or choose another directory`);
      }
    }
    await mkdir(dir, { recursive: true });
    await writeJsonAtomic(configPath, config);
    return new RunDirectory(dir, config);
  }

  /**
   * Whether `path` holds a run (its config.json); false when it is missing, empty or holds only a
   * feature cache (left by `gradfeat extract --out DIR`), so a run can start there. Anything else is
   * refused: the user's files, a user's folder that happens to be called cache/.
   */
  static async holdsRun(path: string): Promise<boolean> {
    const dir = resolve(path);
    // The lock of the process creating the run (see lockDirectory) is not content.
    const entries = existsSync(dir) ? (await readdir(dir)).filter((entry) => entry !== LOCK_FILE) : [];
    if (entries.includes(RUN_CONFIG_FILE)) return true;
    const holdsOnlyCache = entries.length === 1 && entries[0] === CACHE_DIR && (await isFeatureCacheRoot(join(dir, CACHE_DIR)));
    if (entries.length === 0 || holdsOnlyCache) return false;
    throw new Error(
      `${dir}: the directory is not empty and holds no ${RUN_CONFIG_FILE}, so it is not a gradfeat run; choose a new or empty one`,
    );
  }

  /** Opens an existing run to resume it; its config is read back as stored (validate it before use). */
  static async open(path: string): Promise<RunDirectory> {
    const dir = resolve(path);
    const configPath = join(dir, RUN_CONFIG_FILE);
    if (!existsSync(configPath)) throw new Error(`${dir}: no run to resume here (${RUN_CONFIG_FILE} not found)`);
    return new RunDirectory(dir, await readConfig(configPath));
  }

  /** Where the method's checkpoint is kept. */
  checkpointDir(method: Method): string {
    return join(this.path, 'checkpoints', method);
  }

  /** Persists a method's training state; fits `TrainHooks.checkpoint`. */
  saveCheckpoint(state: TrainState): Promise<void> {
    return saveTrainState(this.checkpointDir(state.method), state);
  }

  /** The method's saved state, or undefined if it has none yet. See `loadTrainState` for `expectedParams`. */
  async loadCheckpoint(method: Method, expectedParams?: ReadonlyMap<string, HostTensor>): Promise<TrainState | undefined> {
    const dir = this.checkpointDir(method);
    return hasCheckpoint(dir) ? loadTrainState(dir, method, expectedParams) : undefined;
  }

  /** metrics.json (with `context` as its settings), report.md and curves.svg. */
  async writeResults(results: readonly MethodResult[], context: ReportContext, options: WriteResultsOptions = {}): Promise<ResultFiles> {
    const files: ResultFiles = {
      metrics: join(this.path, 'metrics.json'),
      report: join(this.path, 'report.md'),
      curves: join(this.path, 'curves.svg'),
    };
    const methods = results.map((r) => ({
      method: r.method,
      ...r.metrics,
      trainSeconds: r.trainSeconds,
      finalLoss: r.finalLoss,
      steps: r.state.step,
      epochs: r.state.epoch,
    }));
    await writeJsonAtomic(files.metrics, { ...options.extra, settings: context, methods });
    await writeFileAtomic(files.report, markdownReport(results, context));
    await writeFileAtomic(
      files.curves,
      lossCurvesSvg(
        results.map((r) => ({ method: r.method, history: r.state.history })),
        options.plot,
      ),
    );
    return files;
  }
}

async function readConfig(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new Error(`${path}: cannot read the run's config: ${(error as Error).message}`);
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every leaf that differs (arrays compare whole), with both values shown as JSON. */
function differingFields(stored: unknown, wanted: unknown, path = ''): { field: string; stored: string; wanted: string }[] {
  if (isRecord(stored) && isRecord(wanted)) {
    const keys = new Set([...Object.keys(stored), ...Object.keys(wanted)]);
    return [...keys].flatMap((key) => differingFields(stored[key], wanted[key], path ? `${path}.${key}` : key));
  }
  const show = (value: unknown) => JSON.stringify(value) ?? 'absent';
  return show(stored) === show(wanted) ? [] : [{ field: path || 'config', stored: show(stored), wanted: show(wanted) }];
}
