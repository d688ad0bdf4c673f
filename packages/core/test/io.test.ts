import { cp, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  atomicTempTarget,
  CHECKPOINT_INDEX,
  createReferenceBackend,
  type HostTensor,
  hasCheckpoint,
  initialTrainState,
  linearise,
  loadTrainState,
  type MethodResult,
  memorySource,
  Rng,
  RUN_CONFIG_FILE,
  RunDirectory,
  saveTrainState,
  smallCnn,
  type TrainConfig,
  type TrainState,
  trainMethod,
  writeFileAtomic,
  writeJsonAtomic,
} from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradfeat-io-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (text: string) => new TextEncoder().encode(text);
/** The bit patterns of a float array, so NaN payloads and −0 compare exactly. */
const bitsOf = (data: Float32Array) => [...new Uint32Array(data.buffer, data.byteOffset, data.length)];

describe('writeFileAtomic', () => {
  it('replaces a file and leaves no temp file behind', async () => {
    const path = join(dir, 'metrics.json');
    await writeFileAtomic(path, 'old');
    await writeJsonAtomic(path, { top1: 0.5 });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ top1: 0.5 });
    expect(await readdir(dir)).toEqual(['metrics.json']);
  });

  it('keeps the old file intact and removes its temp file when writing fails midway', async () => {
    const path = join(dir, 'params.f32');
    await writeFileAtomic(path, 'previous checkpoint');
    let tempName = '';
    async function* failingChunks() {
      yield bytes('half of the new');
      tempName = (await readdir(dir)).find((name) => name !== 'params.f32') ?? '';
      throw new Error('disk full');
    }
    await expect(writeFileAtomic(path, failingChunks())).rejects.toThrow('disk full');
    expect(await readFile(path, 'utf8')).toBe('previous checkpoint');
    expect(await readdir(dir)).toEqual(['params.f32']);
    // The interrupted write went to a temp file beside the target, which owners can recognise and sweep.
    expect(atomicTempTarget(tempName)).toBe('params.f32');
    expect(atomicTempTarget('params.f32')).toBeUndefined();
  });

  it('removes its temp file when the final rename fails', async () => {
    await mkdir(join(dir, 'report.md'));
    await expect(writeFileAtomic(join(dir, 'report.md'), 'text')).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['report.md']);
  });

  it('writes chunks in order', async () => {
    const path = join(dir, 'chunks.bin');
    await writeFileAtomic(path, [bytes('ab'), bytes(''), bytes('cde')]);
    expect(await readFile(path, 'utf8')).toBe('abcde');
  });
});

/** A state with awkward values: NaN payloads, −0, subnormals, infinities, Adam's two slots. */
function awkwardState(step: number): TrainState {
  const weight = new Float32Array(2 * 3);
  new Uint32Array(weight.buffer).set([0x7fc00001, 0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x7f7fffff]);
  const rng = new Rng(step);
  const direction = Float32Array.from({ length: 3 * 2 * 3 * 3 }, () => rng.normal());
  return {
    method: 'full',
    step,
    epoch: 2,
    batchInEpoch: 3,
    epochRng: new Rng(step + 1).snapshot(),
    params: new Map<string, HostTensor>([
      ['w1.weight', { shape: [2, 3], data: weight }],
      ['w1.bias', { shape: [2], data: Float32Array.of(Math.fround(0.1), -3) }],
      ['w2:conv.weight', { shape: [3, 2, 3, 3], data: direction }],
    ]),
    optimiser: {
      'w1.weight': [Float32Array.from(weight, (w) => w / 3), Float32Array.from(weight, (w) => w * w)],
      'w1.bias': [Float32Array.of(1e-30, 2), Float32Array.of(0, 5)],
      'w2:conv.weight': [direction.map((d) => d / 7), direction.map((d) => d * d)],
    },
    history: Array.from({ length: step }, (_, i) => ({ step: i + 1, epoch: Math.floor(i / 5), loss: Math.fround(2.3 / (i + 1)) })),
    seconds: step * 0.25,
  };
}

/** Wall-clock `seconds` only match for a saved-and-loaded state, not for a separately run one. */
function expectSameState(actual: TrainState, expected: TrainState, sameRun = true): void {
  const comparable = (s: TrainState) => ({ ...s, params: undefined, optimiser: undefined, seconds: sameRun ? s.seconds : undefined });
  expect(comparable(actual)).toEqual(comparable(expected));
  expect([...actual.params.keys()]).toEqual([...expected.params.keys()]);
  for (const [name, tensor] of expected.params) {
    const loaded = actual.params.get(name) as HostTensor;
    expect(loaded.shape, name).toEqual(tensor.shape);
    expect(bitsOf(loaded.data), name).toEqual(bitsOf(tensor.data));
  }
  expect(Object.keys(actual.optimiser)).toEqual(Object.keys(expected.optimiser));
  for (const [name, slots] of Object.entries(expected.optimiser)) {
    expect(actual.optimiser[name].map(bitsOf), name).toEqual(slots.map(bitsOf));
  }
}

const binaries = async (checkpoint: string) => (await readdir(checkpoint)).filter((name) => name.endsWith('.f32')).sort();

describe('checkpoints', () => {
  it('round-trip bit for bit, and a new save replaces the old files', async () => {
    const checkpoint = join(dir, 'full');
    expect(hasCheckpoint(checkpoint)).toBe(false);
    await saveTrainState(checkpoint, awkwardState(7));
    const first = await binaries(checkpoint);
    expect(first).toHaveLength(2);
    const state = awkwardState(12);
    await saveTrainState(checkpoint, state);
    expect(hasCheckpoint(checkpoint)).toBe(true);
    expectSameState(await loadTrainState(checkpoint, 'full', state.params), state);
    const second = await binaries(checkpoint);
    expect(second).toHaveLength(2);
    expect(second.some((name) => first.includes(name))).toBe(false);
  });

  it('survive a crash mid-save: the previous checkpoint still loads, and the next save sweeps the leftovers', async () => {
    const checkpoint = join(dir, 'full');
    const saved = awkwardState(10);
    await saveTrainState(checkpoint, saved);
    // What a save killed after writing its binaries, and another killed while writing the index, leave behind.
    const crashed = join(dir, 'crashed');
    await saveTrainState(crashed, awkwardState(15));
    for (const name of await binaries(crashed)) await cp(join(crashed, name), join(checkpoint, name));
    await writeFile(join(checkpoint, `.${CHECKPOINT_INDEX}.0123456789ab.tmp`), '{"format": "gradfeat-check');
    await writeFile(join(checkpoint, 'notes.txt'), 'the user keeps notes here');
    expect(await binaries(checkpoint)).toHaveLength(4);

    expectSameState(await loadTrainState(checkpoint, 'full'), saved);
    await saveTrainState(checkpoint, awkwardState(20));
    expect((await readdir(checkpoint)).filter((name) => !name.endsWith('.f32')).sort()).toEqual([CHECKPOINT_INDEX, 'notes.txt']);
    expect(await binaries(checkpoint)).toHaveLength(2);
    expect((await loadTrainState(checkpoint, 'full')).step).toBe(20);
  });

  it('detect a truncated binary, naming the file and the sizes', async () => {
    await saveTrainState(dir, awkwardState(5));
    const params = (await binaries(dir)).find((name) => name.startsWith('params-')) as string;
    const bytesBefore = (await readFile(join(dir, params))).byteLength;
    expect(bytesBefore).toBe((6 + 2 + 54) * 4);
    await truncate(join(dir, params), bytesBefore - 4);
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(
      `${join(dir, params)}: ${bytesBefore - 4} bytes, checkpoint.json expects ${bytesBefore}; the file is truncated or damaged`,
    );
  });

  it('detect a changed byte through the checksum', async () => {
    await saveTrainState(dir, awkwardState(5));
    const optimiser = (await binaries(dir)).find((name) => name.startsWith('optimiser-')) as string;
    const contents = await readFile(join(dir, optimiser));
    contents[17] ^= 0x01;
    await writeFile(join(dir, optimiser), contents);
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(`${join(dir, optimiser)}: contents do not match the checksum`);
  });

  it('refuse a checkpoint of another method, model or format with a message naming the problem', async () => {
    const indexPath = join(dir, CHECKPOINT_INDEX);
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(`${indexPath}: no checkpoint here`);
    const state = awkwardState(5);
    await saveTrainState(dir, state);
    await expect(loadTrainState(dir, 'gradient')).rejects.toThrow(`${indexPath}: holds a 'full' checkpoint, not 'gradient'`);

    const otherModel = new Map(state.params).set('w1.weight', { shape: [2, 4], data: new Float32Array(8) });
    await expect(loadTrainState(dir, 'full', otherModel)).rejects.toThrow(
      `${indexPath}: parameter 'w1.weight' has shape [2, 3], the model needs [2, 4]`,
    );
    const fewer = new Map(state.params);
    fewer.delete('w1.bias');
    await expect(loadTrainState(dir, 'full', fewer)).rejects.toThrow(`has a parameter 'w1.bias' the model does not`);

    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    await writeFile(indexPath, JSON.stringify({ ...index, epochRng: [1, 2, 3] }));
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(
      `${indexPath}: epochRng: expected four unsigned 32-bit integers, got [1,2,3]`,
    );
    await writeFile(
      indexPath,
      JSON.stringify({ ...index, files: { ...index.files, params: { ...index.files.params, file: '../../secrets' } } }),
    );
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(
      `${indexPath}: files.params: expected {file, bytes, sha256} naming a checkpoint binary`,
    );
    await writeFile(indexPath, JSON.stringify({ ...index, history: [{ step: 1, epoch: 0, loss: null }] }));
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(`${indexPath}: history[0]: expected {step, epoch, loss}`);
    await writeFile(indexPath, '{"format": "gradfeat-checkpoint", "vers');
    await expect(loadTrainState(dir, 'full')).rejects.toThrow(`${indexPath}: not valid JSON`);
  });

  it('let an interrupted training run resume to bit-identical parameters and history', async () => {
    const backend = createReferenceBackend();
    const network = smallCnn({ input: [2, 6, 6], channels: [3, 4, 5], strides: [1, 2, 1], classes: 4, seed: 9 });
    const model = linearise(network, { cut: 'block2' });
    const rng = new Rng(4);
    const count = 23;
    const cut = { shape: [count, ...model.cutShape], data: Float32Array.from({ length: count * 5 * 3 * 3 }, () => rng.normal()) };
    const targets = new Float32Array(count * 4);
    for (let i = 0; i < count; i++) targets[i * 4 + rng.int(4)] = 1;
    const data = { inputs: memorySource(cut), targets: { shape: [count, 4], data: targets } };
    const config: TrainConfig = { epochs: 3, batchSize: 5, seed: 11, optimiser: { kind: 'adam', learningRate: 0.01 } };
    const omega = model.sourceClassifier;
    const fresh = () => initialTrainState(model, 'full', omega, config.seed);

    const uninterrupted = await trainMethod(backend, model, omega, 'softmax-ce', data, config, fresh());
    expect(uninterrupted.step).toBe(15);

    const checkpoint = join(dir, 'full');
    const interrupted = trainMethod(backend, model, omega, 'softmax-ce', data, config, fresh(), {
      checkpoint: (state) => saveTrainState(checkpoint, state),
      checkpointEvery: 4,
      onStep: (info) => {
        if (info.step === 11) throw new Error('killed');
      },
    });
    await expect(interrupted).rejects.toThrow('killed');
    const restored = await loadTrainState(checkpoint, 'full', fresh().params);
    // Saved at step 8: second epoch, fourth batch, so the resume crosses an epoch boundary.
    expect([restored.step, restored.epoch, restored.batchInEpoch]).toEqual([8, 1, 3]);
    const resumed = await trainMethod(backend, model, omega, 'softmax-ce', data, config, restored);
    expectSameState(resumed, uninterrupted, false);
  });
});

const result = (method: 'activation' | 'gradient', top1: number, losses: number[]): MethodResult => ({
  method,
  metrics: { top1, top5: 0.99 },
  trainSeconds: 1.5,
  finalLoss: losses.at(-1) as number,
  weightDecay: 0,
  state: { ...awkwardState(0), method, step: losses.length, epoch: 1, history: losses.map((loss, i) => ({ step: i + 1, epoch: 0, loss })) },
});

describe('RunDirectory', () => {
  const config = { model: '/models/resnet20.onnx', methods: ['activation', 'gradient'], training: { epochs: 2 } };

  it('creates a run, accepts the same config again, and refuses a different one naming the changed fields', async () => {
    const runPath = join(dir, 'run');
    const run = await RunDirectory.create(runPath, config);
    expect(JSON.parse(await readFile(join(runPath, RUN_CONFIG_FILE), 'utf8'))).toEqual(config);
    await run.saveCheckpoint(awkwardState(3));
    await RunDirectory.create(runPath, { ...config, unset: undefined });
    await expect(RunDirectory.create(runPath, { ...config, training: { epochs: 3 } })).rejects.toThrow(
      `${runPath}: holds a run with a different config (training.epochs: 2 there, 3 now); resume that run or choose another directory`,
    );
    expect(JSON.parse(await readFile(join(runPath, RUN_CONFIG_FILE), 'utf8'))).toEqual(config);
  });

  it("refuses a non-empty directory that is not a run, so the user's files are never overwritten", async () => {
    await writeFile(join(dir, 'thesis.tex'), 'months of work');
    await expect(RunDirectory.create(dir, config)).rejects.toThrow(`${dir}: the directory is not empty and holds no config.json`);
    expect(await readdir(dir)).toEqual(['thesis.tex']);
  });

  it('takes a directory that holds only a feature cache (from gradfeat extract) as the start of a run', async () => {
    await mkdir(join(dir, 'cache', 'train'), { recursive: true });
    await mkdir(join(dir, 'cache', 'test'), { recursive: true });
    await writeFile(join(dir, 'cache', 'test', 'manifest.json'), JSON.stringify({ format: 'gradfeat-feature-cache', version: 1 }));
    const created = await RunDirectory.create(dir, config);
    expect((await readdir(created.path)).sort()).toEqual(['cache', 'config.json']);
  });

  it("refuses a directory whose only entry is the user's own folder named cache/, holding no feature cache", async () => {
    await mkdir(join(dir, 'cache', 'summer'), { recursive: true });
    await writeFile(join(dir, 'cache', 'summer', 'holiday.jpg'), 'pixels');
    await expect(RunDirectory.create(dir, config)).rejects.toThrow(`${dir}: the directory is not empty and holds no config.json`);
    await writeFile(join(dir, 'cache', 'notes.txt'), 'a file beside the folders');
    await expect(RunDirectory.create(dir, config)).rejects.toThrow(`${dir}: the directory is not empty and holds no config.json`);
    // What `gradfeat extract --out` checks before writing its cache there.
    await expect(RunDirectory.holdsRun(dir)).rejects.toThrow(`${dir}: the directory is not empty and holds no config.json`);
    expect(await readdir(dir)).toEqual(['cache']);
  });

  it('opens a run to resume it, with its config and checkpoints, and says when there is none', async () => {
    await expect(RunDirectory.open(join(dir, 'nothing'))).rejects.toThrow(
      `${join(dir, 'nothing')}: no run to resume here (config.json not found)`,
    );
    const created = await RunDirectory.create(join(dir, 'run'), config);
    const state = awkwardState(6);
    await created.saveCheckpoint(state);
    const opened = await RunDirectory.open(join(dir, 'run'));
    expect(opened.config).toEqual(config);
    expect(opened.checkpointDir('full')).toBe(join(dir, 'run', 'checkpoints', 'full'));
    expectSameState((await opened.loadCheckpoint('full', state.params)) as TrainState, state);
    expect(await opened.loadCheckpoint('gradient')).toBeUndefined();
  });

  it('writes metrics.json, report.md and curves.svg', async () => {
    const run = await RunDirectory.create(join(dir, 'run'), config);
    const results = [result('activation', 0.61, [2.3, 1.9, 1.2]), result('gradient', 0.7, [2.1, 0.8])];
    const context = { model: 'resnet20.onnx', cut: 'layer3.2', dataset: 'cifar10:/data', seed: 3, backend: 'js' };
    const files = await run.writeResults(results, context, { extra: { totalSeconds: 4 } });
    expect(JSON.parse(await readFile(files.metrics, 'utf8'))).toEqual({
      totalSeconds: 4,
      settings: context,
      methods: [
        { method: 'activation', top1: 0.61, top5: 0.99, trainSeconds: 1.5, finalLoss: 1.2, steps: 3, epochs: 1 },
        { method: 'gradient', top1: 0.7, top5: 0.99, trainSeconds: 1.5, finalLoss: 0.8, steps: 2, epochs: 1 },
      ],
    });
    expect(await readFile(files.report, 'utf8')).toContain('| gradient | **70.00 %** | **99.00 %** | 1.5 s | 0.8000 |');
    expect((await readFile(files.curves, 'utf8')).match(/<polyline /g)).toHaveLength(2);
    expect((await readdir(join(dir, 'run'))).sort()).toEqual(['config.json', 'curves.svg', 'metrics.json', 'report.md']);
  });
});
