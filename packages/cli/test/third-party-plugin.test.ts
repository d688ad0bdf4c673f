import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithShared, hasShared } from '../../../test-support/shared.js';
import { type CliOptions, runCli } from './run-cli.js';
import { RECORD, writeSmallCifarRun } from './small-cifar.js';

/**
 * A dataset format from outside gradfeat: the docs' example plugin (`rgb32`, raw 32×32 RGB records),
 * copied into a folder of its own whose node_modules links the two packages it may import, as a
 * user's project would have them installed, and run with the built `gradfeat` command. Its records
 * are the CIFAR-10 records of small-cifar.ts re-laid out (pixels interleaved, label last), so every
 * number must equal what the built-in `cifar10` reader gives for the same images.
 */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const EXAMPLE = join(repo, 'apps', 'docs', 'examples', 'rgb-records-plugin.mjs');
const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
let work = '';
const path = (...parts: string[]) => join(work, ...parts);
const plugin = () => path('plugins', 'rgb-records-plugin.mjs');

/** A plugin module of a few lines, in the plugins folder. */
function writePlugin(name: string, source: string): string {
  writeFileSync(path('plugins', name), source);
  return path('plugins', name);
}

/** CIFAR records (label, R, G, B planes) → rgb32 records (pixels interleaved, label last). */
function toRgbRecords(cifar: Buffer): Buffer {
  const count = cifar.length / RECORD;
  const out = Buffer.alloc(cifar.length);
  for (let r = 0; r < count; r++) {
    for (let pixel = 0; pixel < 1024; pixel++)
      for (let channel = 0; channel < 3; channel++) out[r * RECORD + pixel * 3 + channel] = cifar[r * RECORD + 1 + channel * 1024 + pixel];
    out[r * RECORD + RECORD - 1] = cifar[r * RECORD];
  }
  return out;
}

const gradfeat = (args: string[], options: CliOptions = {}) => runCli(args, { built: true, cwd: work, ...options });

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'gradfeat-plugin-'));
  mkdirSync(path('node_modules', '@gradfeat'), { recursive: true });
  for (const name of ['core', 'datasets']) symlinkSync(join(repo, 'packages', name), path('node_modules', '@gradfeat', name), 'dir');
  mkdirSync(path('plugins', 'copy'), { recursive: true });
  copyFileSync(EXAMPLE, plugin());
  copyFileSync(EXAMPLE, path('plugins', 'copy', 'rgb-records-plugin.mjs'));
  if (!hasShared) return;
  mkdirSync(path('cifar'));
  const config = writeSmallCifarRun(path('cifar'), ['workers: 0']);
  mkdirSync(path('rgb'));
  const batches = [1, 2, 3, 4, 5].map((b) => readFileSync(path('cifar', `data_batch_${b}.bin`)));
  writeFileSync(path('rgb', 'train.rgb'), toRgbRecords(Buffer.concat(batches)));
  writeFileSync(path('rgb', 'test.rgb'), toRgbRecords(readFileSync(path('cifar', 'test_batch.bin'))));
  writeFileSync(path('rgb', 'classes.txt'), `${CIFAR10_CLASSES.join('\n')}\n`);
  // The same run on the plugin's format: once expecting the plugin from outside, once naming it itself.
  const rgbConfig = readFileSync(config, 'utf8').replace(/^dataset: .*$/m, 'dataset: rgb32:rgb');
  writeFileSync(path('rgb.yaml'), rgbConfig);
  writeFileSync(path('rgb-with-plugin.yaml'), `${rgbConfig}\nplugins: [./plugins/rgb-records-plugin.mjs]\n`);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Manifest {
  counts: { images: number; rows: number };
  shards: { sha256: string }[];
}
const manifest = (dir: string, split: string): Manifest => JSON.parse(readFileSync(join(dir, split, 'manifest.json'), 'utf8'));
const metrics = (dir: string) =>
  (JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).methods as { method: string; top1: number; finalLoss: number }[]).map(
    ({ method, top1, finalLoss }) => ({ method, top1, finalLoss }),
  );

describeWithShared('a third-party dataset format in dataset-info, extract and compare', () => {
  it('dataset-info counts the classes of its records as the built-in CIFAR-10 reader does, and its help lists the format', async () => {
    const labels = Buffer.concat([1, 2, 3, 4, 5].map((b) => readFileSync(path('cifar', `data_batch_${b}.bin`))));
    const expected = new Array(10).fill(0);
    for (let r = 0; r < labels.length / RECORD; r++) expected[labels[r * RECORD]]++;

    const run = await gradfeat(['dataset-info', '--plugin', plugin(), '--dataset', `rgb32:${path('rgb')}`, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const info = JSON.parse(run.stdout);
    expect(info).toMatchObject({ count: 240, classNames: CIFAR10_CLASSES, labelKind: 'single-label', perClassCounts: expected });
    const builtIn = JSON.parse((await gradfeat(['dataset-info', '--dataset', `cifar10:${path('cifar')}`, '--json'])).stdout);
    expect(info.perClassCounts).toEqual(builtIn.perClassCounts);

    const test = await gradfeat(['dataset-info', '--plugin', plugin(), '--dataset', `rgb32:${path('rgb')}`, '--split', 'test', '--json']);
    expect(JSON.parse(test.stdout).count).toBe(120);
    const help = await gradfeat(['dataset-info', '--help', '--plugin', plugin()]);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      '--dataset <KIND:PATH> dataset, KIND one of cifar10, cifar100, folder, voc2007, imagenet, rgb32',
    );
    expect(help.stdout).toContain('rgb32     a folder of <split>.rgb records (32×32 RGB + label) and classes.txt (rgb-records)');
  });

  it('extract (plugin named by GRADFEAT_PLUGINS) caches the trunk outputs the built-in reader gives, byte for byte', async () => {
    const fromPlugin = await gradfeat(['extract', '--config', path('rgb.yaml'), '--out', path('rgb-run'), '--json'], {
      env: { GRADFEAT_PLUGINS: plugin() },
    });
    expect(fromPlugin.code, fromPlugin.stderr).toBe(0);
    const builtIn = await gradfeat(['extract', '--config', path('cifar', 'run.yaml'), '--out', path('cifar-run'), '--json']);
    expect(builtIn.code, builtIn.stderr).toBe(0);
    for (const [split, rows] of [
      ['train', 240],
      ['test', 120],
    ] as const) {
      const ours = manifest(path('rgb-run', 'cache'), split);
      expect(ours.counts).toMatchObject({ images: rows, rows });
      expect(ours.shards.map((s) => s.sha256)).toEqual(manifest(path('cifar-run', 'cache'), split).shards.map((s) => s.sha256));
    }
  });

  it('compare (plugin named in the run config) trains to the numbers of the built-in reader, far above chance', async () => {
    const quick = ['--methods', 'activation', 'full', '--epochs', '1', '--json'];
    const fromPlugin = await gradfeat(['compare', '--config', path('rgb-with-plugin.yaml'), '--out', path('rgb-run'), ...quick]);
    expect(fromPlugin.code, fromPlugin.stderr).toBe(0);
    const builtIn = await gradfeat(['compare', '--config', path('cifar', 'run.yaml'), '--out', path('cifar-run'), ...quick]);
    expect(builtIn.code, builtIn.stderr).toBe(0);
    const ours = metrics(path('rgb-run'));
    expect(ours.map((m) => m.method)).toEqual(['activation', 'full']);
    expect(ours).toEqual(metrics(path('cifar-run')));
    // ResNet-20's features of CIFAR-10 images it was trained on (95 % and 99 % measured); chance is 10 %.
    for (const { method, top1 } of ours) expect(top1, method).toBeGreaterThan(0.8);
    // The run records the plugin (as an absolute path), so eval of the run finds the format again.
    expect(JSON.parse(readFileSync(path('rgb-run', 'config.json'), 'utf8')).plugins).toEqual([plugin()]);
    const evaluated = await gradfeat(['eval', '--run', path('rgb-run'), '--json']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(JSON.parse(evaluated.stdout).results.full.top1).toBe(ours[1].top1);
  });
});

describe('plugin collisions and bad plugins', () => {
  const rgb32 = (more: string[] = []) => ['dataset-info', ...more, '--dataset', `rgb32:${path('rgb')}`, '--json'];

  it('the same plugin twice, or a second copy of it, changes nothing', async () => {
    const copy = path('plugins', 'copy', 'rgb-records-plugin.mjs');
    const run = await gradfeat(
      ['dataset-info', '--plugin', plugin(), '--plugin', './plugins/rgb-records-plugin.mjs', '--plugin', copy, '--help'],
      {
        env: { GRADFEAT_PLUGINS: plugin() },
      },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.match(/^ {2}rgb32 /gm)).toHaveLength(1);
  });

  it('a different plugin under a taken name is refused, naming both plugins and where they came from', async () => {
    const rival = writePlugin(
      'rival.mjs',
      "export default { name: 'rival-records', datasetFormats: [{ name: 'rgb32', describes: 'other records', open: async () => { throw new Error('unused'); } }] };\n",
    );
    const run = await gradfeat(rgb32(['--plugin', plugin(), '--plugin', rival]));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `plugin 'rival-records' (${rival}) registers the dataset format 'rgb32', which plugin 'rgb-records' (${plugin()}) has registered; ` +
        'a name belongs to one plugin: load only one of them, or rename the dataset format',
    );
    const clash = writePlugin(
      'clash.mjs',
      "export default { name: 'my-cifar', datasetFormats: [{ name: 'cifar10', describes: 'mine', open: async () => { throw new Error('unused'); } }] };\n",
    );
    const builtIn = await gradfeat(['--plugin', clash, '--version']);
    expect(builtIn.code).toBe(1);
    expect(builtIn.stderr).toContain(
      `plugin 'my-cifar' (${clash}) registers the dataset format 'cifar10', which plugin '@gradfeat/datasets'`,
    );
  });

  it('a plugin that cannot be loaded says which one, why, and what to give instead', async () => {
    const missing = await gradfeat(rgb32(['--plugin', './plugins/nope.mjs']));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `gradfeat: error: --plugin: plugin './plugins/nope.mjs': ${path('plugins', 'nope.mjs')} does not exist; give the path of a JavaScript module (e.g. ./my-plugin.mjs) or an installed package's name`,
    );
    const notInstalled = await gradfeat(rgb32(['--plugin', 'gradfeat-plugin-nowhere']));
    expect(notInstalled.stderr).toContain(
      "--plugin: plugin 'gradfeat-plugin-nowhere': no package 'gradfeat-plugin-nowhere' is installed where gradfeat can import it",
    );
    const bare = await gradfeat(rgb32(['--plugin', 'plugins/rgb-records-plugin.mjs']));
    expect(bare.stderr).toContain(`to load the file ${plugin()}, write ./plugins/rgb-records-plugin.mjs`);

    const noDefault = writePlugin('no-default.mjs', "export const plugin = { name: 'x' };\n");
    const fromEnvironment = await gradfeat(['--version'], { env: { GRADFEAT_PLUGINS: noDefault } });
    expect(fromEnvironment.stderr).toContain(
      `GRADFEAT_PLUGINS: plugin '${noDefault}' has no default export; a plugin module exports default { name, backends?, modelFormats?, datasetFormats? }`,
    );
    const malformed = writePlugin(
      'malformed.mjs',
      "export default { name: 'bad', datasetFormats: [{ name: 'bad', describes: 'no open' }] };\n",
    );
    const refused = await gradfeat(['--plugin', malformed, '--version']);
    expect(refused.stderr).toContain(
      `plugin 'bad' (${malformed}): datasetFormats[0]: the dataset format 'bad' needs 'open' (a function), got undefined`,
    );
  });

  it('without its plugin, the kind is unknown: the error lists the registered kinds and how to add a plugin', async () => {
    const run = await gradfeat(rgb32());
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `dataset 'rgb32:${path('rgb')}' should be KIND:PATH with KIND one of cifar10, cifar100, folder, voc2007, imagenet; ` +
        'a plugin adds dataset formats: gradfeat --plugin <module-or-path>, GRADFEAT_PLUGINS=<module,…> or plugins: [<module>] in the run config',
    );
    const backend = await gradfeat(['demo', '--backend', 'cuda']);
    expect(backend.stderr).toContain("unknown backend 'cuda' (registered: onnx, tfjs, js); a plugin adds backends: gradfeat --plugin");
  });
});
