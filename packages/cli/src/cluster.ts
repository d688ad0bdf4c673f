import { join } from 'node:path';
import type { Classifier, EvaluatorRequest, Method, TrainingData } from '@gradfeat/core';
import { cachedSplit, featureCacheKey, openFeatureCache, pointOfCache, trunkCacheFill } from '@gradfeat/datasets';
import {
  Coordinator,
  type JobContext,
  modelFingerprint,
  type PreparedRun,
  type RunningWorker,
  sha256,
  startWorker,
} from '@gradfeat/distributed';
import { type RunConfig, type RunConfigInput, resolveRunConfig } from './config.js';
import type { Progress } from './output.js';
import { loadPlugins, requestedPlugins } from './plugins.js';
import {
  type CacheKind,
  cacheRoot,
  headCacheFill,
  type PreparedModel,
  prepareModel,
  type Transport,
  trunkExtraction,
  withAblatedOmega,
} from './workflow.js';

/** A shard job's `fill`: which cache of the run. */
interface CacheRef {
  readonly role: 'train' | 'test';
  readonly kind: CacheKind;
}

/** A gradient job's `training`: the method, and whether its steps read the cached point. */
interface TrainingRef {
  readonly method: Method;
  readonly point: boolean;
}

export interface ClusterTransport extends Transport {
  readonly coordinator: Coordinator;
  close(): Promise<void>;
}

/**
 * Makes this process the coordinator of a run on the workers listening on `redis`: cache shards and
 * gradient sums become jobs; everything else (planning, reducing, optimiser steps, checkpoints,
 * evaluation, reports) stays here, so the run directory is the one a local run writes.
 */
export async function coordinate(redis: string, config: RunConfig, prepared: PreparedModel, progress: Progress): Promise<ClusterTransport> {
  // Workers load the plugins this process loaded (--plugin, GRADFEAT_PLUGINS and the config's), so a
  // dataset format, model format or backend from a plugin reads the same there.
  const context: ClusterRunConfig = { ...config, plugins: requestedPlugins() };
  const coordinator = await Coordinator.connect({
    redis,
    gradientJobs: config.gradientParts,
    context: {
      config: context,
      configFingerprint: sha256(JSON.stringify(context)),
      modelFingerprint: modelFingerprint(prepared.model),
      run: config.out,
      blobDirectory: join(cacheRoot(config), '.cluster', sha256(config.out).slice(0, 16)),
    },
  });
  progress.note(`cluster: ${coordinator.workers} workers listening on ${redis}; gradients summed from ${config.gradientParts} jobs`, {
    workers: coordinator.workers,
    gradientParts: config.gradientParts,
  });
  if (config.gradientParts < coordinator.workers) {
    progress.note(
      `only ${config.gradientParts} of ${coordinator.workers} workers compute each step; set --gradient-parts ${coordinator.workers}`,
    );
  }
  // Only the whole training split trains through the transport (weight-decay sweeps train here), and
  // workers read it from the shared caches: a job names the method and whether it reads the point.
  const describe = (request: EvaluatorRequest): TrainingRef => ({ method: request.method, point: request.data.point !== undefined });
  return {
    coordinator,
    runners: (role, kind) => coordinator.shardRunner({ role, kind } satisfies CacheRef, `${kind} ${config.splits[role]}`),
    evaluator: coordinator.gradientEvaluator(describe),
    close: () => coordinator.close(),
  };
}

/** Runs jobs for any run whose files this machine sees at the same paths, until closed. */
export function work(options: {
  redis: string;
  concurrency?: number;
  stallSeconds?: number;
  log: (event: Readonly<Record<string, unknown>>) => void;
}): Promise<RunningWorker> {
  return startWorker({ ...options, resolver: { prepare: prepareRun } });
}

/** A run's config as jobs carry it: `plugins` lists every plugin module the coordinator loaded. */
type ClusterRunConfig = RunConfig & { readonly plugins?: readonly string[] };

/** A worker's side of a run: the model and caches from the job's config, checked against the coordinator's. */
async function prepareRun(context: JobContext): Promise<PreparedRun> {
  const { plugins } = context.config as ClusterRunConfig;
  await loadPlugins((plugins ?? []).map((module) => ({ module, origin: `the coordinator of ${context.run}`, base: context.run })));
  const config = resolveRunConfig(context.config as RunConfigInput);
  const prepared = await prepareModel(config);
  const fingerprint = modelFingerprint(prepared.model);
  if (fingerprint !== context.modelFingerprint) {
    throw new Error(
      `the model prepared from ${config.model} (cut ${config.cut}) differs from the coordinator's (fingerprint ${fingerprint.slice(0, 12)} here, ${context.modelFingerprint.slice(0, 12)} there); every machine must see the same model file`,
    );
  }
  const trainCut = async () => {
    const cut = trunkExtraction(config, prepared, 'train');
    return cachedSplit(await openFeatureCache(cut.cacheDir, featureCacheKey(prepared.model, cut.dataset, cut.split, cut.transform)));
  };
  const modelFor = (classes: number) => withAblatedOmega(config, prepared.model, classes);
  return {
    async cacheFill(fill: unknown) {
      const { role, kind } = fill as CacheRef;
      if (kind === 'cut') return trunkCacheFill(trunkExtraction(config, prepared, role));
      const split = await trainCut();
      return headCacheFill(config, prepared, modelFor(split.targets.shape[1]), split.cache, kind);
    },
    async trainingRequest(training: unknown, omegaBar: Classifier): Promise<EvaluatorRequest> {
      const { method, point } = training as TrainingRef;
      const split = await trainCut();
      const model = modelFor(split.targets.shape[1]);
      const open = async (kind: 'point' | 'features') => {
        const fill = headCacheFill(config, prepared, model, split.cache, kind);
        return openFeatureCache(fill.directory, fill.key);
      };
      const data: TrainingData = {
        inputs: method === 'activation' ? (await open('features')).source : split.cut,
        targets: split.targets,
        mask: split.mask,
        point: point ? pointOfCache(model, await open('point')) : undefined,
      };
      const loss = split.labelKind === 'multi-label' ? 'sigmoid-bce' : 'softmax-ce';
      return { backend: prepared.backend, model, omegaBar, loss, data, method };
    },
    async dispose() {
      await prepared.backend.dispose?.();
    },
  };
}
