import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_RUN_CONFIG, loadRunConfig, type RunConfigInput, resolveRunConfig, trainConfigFor } from '../src/config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradfeat-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const required: RunConfigInput = { model: '/m/resnet20.onnx', dataset: 'cifar10:/data/cifar', cut: 'layer3.2' };

describe('loadRunConfig', () => {
  it('reads YAML, resolving relative paths against the file, and checks nothing more than it says', async () => {
    const path = await configFile(
      'run.yaml',
      [
        'model: models/resnet20.onnx',
        'dataset: folder:../images',
        'cut: layer3.2',
        'methods: [activation, full]',
        'training:',
        '  all: { epochs: 2 }',
        '  full: { learningRate: 1e-3, optimiser: { beta1: 0.9 } }',
      ].join('\n'),
    );
    expect(await loadRunConfig(path)).toEqual({
      model: join(dir, 'models/resnet20.onnx'),
      dataset: `folder:${resolve(dir, '../images')}`,
      cut: 'layer3.2',
      methods: ['activation', 'full'],
      training: { all: { epochs: 2 }, full: { learningRate: 0.001, optimiser: { beta1: 0.9 } } },
    });
  });

  it('reads JSON', async () => {
    const path = await configFile('run.json', JSON.stringify({ seed: 4, backend: 'onnx', weightDecaySweep: { values: [0, 1e-4] } }));
    expect(await loadRunConfig(path)).toEqual({
      seed: 4,
      backend: 'onnx',
      weightDecaySweep: { values: [0, 1e-4], heldOutFraction: 0.1, methods: ['activation'] },
    });
  });

  it('names the file, the field and what was expected', async () => {
    const path = await configFile('run.yaml', 'methods: [activation, gradient, fulll]\n');
    await expect(loadRunConfig(path)).rejects.toThrow(
      `${path}: methods[2]: expected one of activation, gradient, full, finetune, got 'fulll'`,
    );
  });

  it('reports every problem, one line each', async () => {
    const path = await configFile(
      'run.yaml',
      [
        'dataset: mnist:/data',
        'backend: cuda',
        'methods: [full, full]',
        'seed: 1.5',
        'float16Cache: "yes"',
        'training:',
        '  gradient: { learningRate: -1, lr: 2, optimiser: { kind: rmsprop } }',
        '  activation: { epochs: 0 }',
        'weightDecaySweep: { values: [], heldOutFraction: 1 }',
        'outdir: runs/a',
      ].join('\n'),
    );
    const message = await loadRunConfig(path).then(
      () => '',
      (error: Error) => error.message,
    );
    const hint = (noun: string) =>
      `; a plugin adds ${noun}: gradfeat --plugin <module-or-path>, GRADFEAT_PLUGINS=<module,…> or plugins: [<module>] in the run config`;
    expect(message.split('\n').sort()).toEqual(
      [
        `${path}: dataset: dataset 'mnist:/data' should be KIND:PATH with KIND one of cifar10, cifar100, folder, voc2007, imagenet${hint('dataset formats')}`,
        `${path}: backend: expected one of onnx, tfjs, js, got 'cuda'${hint('backends')}`,
        `${path}: methods[1]: 'full' is listed twice`,
        `${path}: seed: expected a whole number, got 1.5`,
        `${path}: float16Cache: expected true or false, got 'yes'`,
        `${path}: training.gradient.learningRate: expected a number > 0, got -1`,
        `${path}: training.gradient.optimiser.kind: expected one of sgd, adam, lbfgs, got 'rmsprop'`,
        `${path}: training.gradient: unknown field 'lr'`,
        `${path}: training.activation.epochs: expected a number ≥ 1, got 0`,
        `${path}: weightDecaySweep.values: expected at least 1 entry`,
        `${path}: weightDecaySweep.heldOutFraction: expected a number < 1, got 1`,
        `${path}: unknown field 'outdir'`,
      ].sort(),
    );
  });

  it('names the file and the position of a syntax error, and refuses a file that is not a mapping', async () => {
    const duplicate = await configFile('run.yaml', 'model: a\nseed: 1\nseed: 2\n');
    await expect(loadRunConfig(duplicate)).rejects.toThrow(`${duplicate}: not valid YAML: Map keys must be unique at line 3, column 1`);
    const broken = await configFile('run.json', '{"seed": 1,\n "cut" "x"}');
    await expect(loadRunConfig(broken)).rejects.toThrow(
      `${broken}: not valid JSON: Missing , or : between flow map items at line 2, column 8`,
    );
    const list = await configFile('list.json', '[1, 2]');
    await expect(loadRunConfig(list)).rejects.toThrow(`${list}: expected a mapping of settings at the top level, got [1,2]`);
    await expect(loadRunConfig(join(dir, 'missing.yaml'))).rejects.toThrow(`${join(dir, 'missing.yaml')}: cannot read the run config`);
  });
});

describe('resolveRunConfig', () => {
  it("starts from the paper's optimisers: Adam (0.5, 0.999) for the linearised models, SGD momentum 0.9 for the probe", () => {
    const config = resolveRunConfig(required);
    expect(config.training.activation.optimiser).toEqual({ kind: 'sgd', momentum: 0.9 });
    for (const method of ['gradient', 'full', 'finetune'] as const) {
      expect(config.training[method].optimiser).toEqual({ kind: 'adam', beta1: 0.5, beta2: 0.999, epsilon: 1e-8 });
    }
    expect(config).toEqual({ ...DEFAULT_RUN_CONFIG, ...required, out: resolve(DEFAULT_RUN_CONFIG.out) });
  });

  it('lets flags override the file and the file override the defaults, with training.all under the per-method values', async () => {
    const file = await loadRunConfig(
      await configFile(
        'run.yaml',
        [
          'model: resnet20.onnx',
          'dataset: cifar10:cifar',
          'cut: layer3.2',
          'seed: 3',
          'out: runs/first',
          'training:',
          '  all: { epochs: 20, weightDecay: 1e-4 }',
          '  gradient: { epochs: 30, learningRate: 5e-4 }',
        ].join('\n'),
      ),
    );
    const config = resolveRunConfig(file, {
      seed: 9,
      out: 'elsewhere',
      backend: undefined,
      training: { all: { epochs: 2 }, full: { clipNorm: 5 } },
    });
    expect(config.seed).toBe(9);
    expect(config.model).toBe(join(dir, 'resnet20.onnx'));
    expect(config.dataset).toBe(`cifar10:${join(dir, 'cifar')}`);
    expect(config.out).toBe(resolve('elsewhere'));
    expect(config.backend).toBeUndefined();
    expect(config.training.gradient).toEqual({ ...DEFAULT_RUN_CONFIG.training.gradient, epochs: 2, weightDecay: 1e-4, learningRate: 5e-4 });
    expect(config.training.full).toEqual({ ...DEFAULT_RUN_CONFIG.training.full, epochs: 2, weightDecay: 1e-4, clipNorm: 5 });
    expect(config.training.activation).toEqual({ ...DEFAULT_RUN_CONFIG.training.activation, epochs: 2, weightDecay: 1e-4 });
  });

  it("switching an optimiser's kind starts from that kind's defaults, and settings of the other kind are refused", () => {
    const config = resolveRunConfig({ ...required, training: { activation: { optimiser: { kind: 'adam', beta1: 0.9 } } } });
    expect(config.training.activation.optimiser).toEqual({ kind: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    expect(() => resolveRunConfig({ ...required, training: { activation: { optimiser: { beta1: 0.9 } } } })).toThrow(
      "run config: training.activation.optimiser: unknown field 'beta1'",
    );
  });

  it('says which required settings are missing and checks the flags too', () => {
    expect(() => resolveRunConfig({ cut: 'x' })).toThrow(
      'run config: model: is required; set it in the run config or on the command line\nrun config: dataset: is required',
    );
    expect(() => resolveRunConfig(required, { training: { all: { batchSize: 0 } } })).toThrow(
      'command-line flags: training.all.batchSize: expected a number ≥ 1, got 0',
    );
  });

  it('is a fixed point: the resolved config, read back from config.json, resolves to itself', () => {
    const config = resolveRunConfig(
      { ...required, weightDecaySweep: { values: [0, 1e-3] }, workers: 2 },
      { training: { finetune: { halveEvery: 100, optimiser: { kind: 'sgd' } } } },
    );
    expect(resolveRunConfig(JSON.parse(JSON.stringify(config)))).toEqual(config);
  });
});

describe('trainConfigFor', () => {
  it("gives the core trainer each method's settings", () => {
    const config = resolveRunConfig({ ...required, seed: 5, training: { gradient: { halveEvery: 200, clipNorm: 1, weightDecay: 1e-5 } } });
    expect(trainConfigFor(config, 'gradient')).toEqual({
      epochs: 10,
      batchSize: 64,
      seed: 5,
      optimiser: { kind: 'adam', learningRate: 1e-3, weightDecay: 1e-5, beta1: 0.5, beta2: 0.999, epsilon: 1e-8 },
      schedule: { halveEvery: 200 },
      clipNorm: 1,
      gradientParts: 1,
    });
    expect(trainConfigFor(config, 'activation')).toEqual({
      epochs: 10,
      batchSize: 64,
      seed: 5,
      optimiser: { kind: 'sgd', learningRate: 1e-2, weightDecay: 0, momentum: 0.9 },
      schedule: undefined,
      clipNorm: undefined,
      gradientParts: 1,
    });
  });

  it('L-BFGS starts from its defaults (10 history pairs, tolerance 1e-6), and gradientParts applies to every method', () => {
    const config = resolveRunConfig({ ...required, gradientParts: 4, training: { all: { optimiser: { kind: 'lbfgs' } } } });
    expect(trainConfigFor(config, 'full')).toMatchObject({
      optimiser: { kind: 'lbfgs', history: 10, tolerance: 1e-6 },
      gradientParts: 4,
    });
    expect(() => resolveRunConfig({ ...required, gradientParts: 0 })).toThrow('gradientParts: expected a number ≥ 1, got 0');
  });
});

describe('hostile configs', () => {
  it('refuses infinite numbers (YAML .inf), naming the field, whatever the setting', async () => {
    const path = await configFile('run.yaml', 'training:\n  all: { learningRate: .inf }\n  full: { weightDecay: .inf, clipNorm: .inf }\n');
    const message = await loadRunConfig(path).then(
      () => '',
      (error: Error) => error.message,
    );
    expect(message.split('\n').sort()).toEqual([
      `${path}: training.all.learningRate: expected a finite number, got Infinity`,
      `${path}: training.full.clipNorm: expected a finite number, got Infinity`,
      `${path}: training.full.weightDecay: expected a finite number, got Infinity`,
    ]);
  });

  it('refuses YAML nested hundreds of levels deep as such, not as a stack overflow', async () => {
    const path = await configFile('deep.yaml', `methods: ${'['.repeat(2000)}${']'.repeat(2000)}\n`);
    await expect(loadRunConfig(path)).rejects.toThrow(`${path}: not valid YAML: nested too deeply to read`);
  });

  it('bounds the image-decoding workers: more threads than 64 only take memory', () => {
    expect(() => resolveRunConfig(required, { workers: 3000 })).toThrow('command-line flags: workers: expected a number ≤ 64, got 3000');
    expect(resolveRunConfig(required, { workers: 64 }).workers).toBe(64);
  });

  it('refuses a split name that is not a single folder name, as it names cache and dataset folders', () => {
    for (const name of ['../../elsewhere', 'a/b', '..', '.', 'a\\b']) {
      expect(() => resolveRunConfig(required, { splits: { train: name } })).toThrow(
        `command-line flags: splits.train: expected a single folder name (no '/' or '\\', not '.' or '..'), got '${name}'`,
      );
    }
    expect(resolveRunConfig(required, { splits: { train: 'trainval' } }).splits.train).toBe('trainval');
  });
});
