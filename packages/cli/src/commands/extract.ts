import { RunDirectory } from '@gradfeat/core';
import type { FeatureCache } from '@gradfeat/datasets';
import type { Command } from 'commander';
import { coordinate } from '../cluster.js';
import { createProgress, emit, renderTable } from '../output.js';
import { addRunOptions, type RunFlags, resolveRunFlags } from '../run-options.js';
import { cachesPoint, type PreparedSplits, prepareModel, preparePoint, prepareSplits, withAblatedOmega } from '../workflow.js';

export function registerExtract(program: Command): void {
  addRunOptions(
    program
      .command('extract')
      .description('run the frozen trunk θ1 over the train and test splits into the feature cache (resumes if killed)'),
  )
    .option('--json', 'print the cache summary as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  gradfeat extract --model ../shared/models/mobilenet_v1_0.25_224 --dataset folder:/data/cifar-10-jpg --cut conv_pw_12_relu --out runs/mnet\n  gradfeat extract --config /shared/run.yaml --out /shared/runs/r18 --redis redis://10.0.0.5:6379   # shards written by gradfeat workers',
    )
    .action(async (flags: RunFlags & { json?: boolean }) => {
      const config = await resolveRunFlags(flags);
      // The cache goes into <out>/cache, the start of a run: a user's folder there is refused.
      if (config.cacheDir === undefined) await RunDirectory.holdsRun(config.out);
      const progress = createProgress();
      const prepared = await prepareModel(config);
      const cluster = flags.redis ? await coordinate(flags.redis, config, prepared, progress) : undefined;
      let splits: PreparedSplits;
      let point: FeatureCache | undefined;
      try {
        splits = await prepareSplits(config, prepared, progress, cluster?.runners);
        // The linearised models' point, where the run caches it (see --point-cache): one row of features and residuals per image.
        const model = withAblatedOmega(config, prepared.model, splits.train.targets.shape[1]);
        if (cachesPoint(config, model)) {
          point = (await preparePoint(config, prepared, model, splits.train.cache, progress, cluster?.runners)).cache;
        }
      } finally {
        await cluster?.close();
      }
      progress.finish();
      const describe = (name: string, { manifest, verification }: FeatureCache, perClassCounts?: readonly number[]) => ({
        split: name,
        images: manifest.counts.images,
        rows: manifest.counts.rows,
        skipped: manifest.counts.skipped,
        sampleShape: manifest.sampleShape,
        dtype: manifest.dtype,
        shards: manifest.shards.length,
        bytes: manifest.shards.reduce((total, shard) => total + shard.bytes, 0),
        verification,
        ...(perClassCounts && { perClassCounts }),
      });
      const rows = [
        describe(config.splits.train, splits.train.cache, splits.train.perClassCounts),
        describe(config.splits.test, splits.test.cache, splits.test.perClassCounts),
      ];
      if (point) rows.push(describe(`${config.splits.train} (point)`, point));
      emit(flags.json === true, { backend: prepared.backend.name, cut: config.cut, splits: rows }, () =>
        renderTable(
          ['split', 'images', 'rows', 'skipped', 'per-row shape', 'dtype', 'shards', 'size'],
          rows.map((r) => [
            r.split,
            String(r.images),
            String(r.rows),
            String(r.skipped),
            `[${r.sampleShape.join(', ')}]`,
            r.dtype,
            String(r.shards),
            `${(r.bytes / 2 ** 20).toFixed(1)} MiB`,
          ]),
        ),
      );
    });
}
