import type { ExtractedSplit } from '@gradfeat/datasets';
import type { Command } from 'commander';
import { coordinate } from '../cluster.js';
import { createProgress, emit, renderTable } from '../output.js';
import { addRunOptions, type RunFlags, resolveRunFlags } from '../run-options.js';
import { type PreparedSplits, prepareModel, prepareSplits } from '../workflow.js';

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
      const progress = createProgress();
      const prepared = await prepareModel(config);
      const cluster = flags.redis ? await coordinate(flags.redis, config, prepared, progress) : undefined;
      let splits: PreparedSplits;
      try {
        splits = await prepareSplits(config, prepared, progress, cluster?.runners);
      } finally {
        await cluster?.close();
      }
      progress.finish();
      const describe = (name: string, split: ExtractedSplit) => ({
        split: name,
        images: split.cache.manifest.counts.images,
        rows: split.cache.manifest.counts.rows,
        skipped: split.cache.manifest.counts.skipped,
        sampleShape: split.cache.manifest.sampleShape,
        dtype: split.cache.manifest.dtype,
        shards: split.cache.manifest.shards.length,
      });
      const rows = [describe(config.splits.train, splits.train), describe(config.splits.test, splits.test)];
      emit(flags.json === true, { backend: prepared.backend.name, cut: config.cut, splits: rows }, () =>
        renderTable(
          ['split', 'images', 'rows', 'skipped', 'per-row shape', 'dtype', 'shards'],
          rows.map((r) => [
            r.split,
            String(r.images),
            String(r.rows),
            String(r.skipped),
            `[${r.sampleShape.join(', ')}]`,
            r.dtype,
            String(r.shards),
          ]),
        ),
      );
    });
}
