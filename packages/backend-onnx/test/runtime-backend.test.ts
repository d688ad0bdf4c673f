import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BATCH_SCALE,
  basicBlockNetwork,
  type Conv2DAttrs,
  createReferenceBackend,
  FEATURES,
  gradName,
  type HostTensor,
  hostTensor,
  INPUT,
  initialParams,
  inputShapesOf,
  LOSS,
  linearisationPointProgram,
  linearise,
  normalTensor,
  oneHot,
  type PoolAttrs,
  type Program,
  pointResiduals,
  Rng,
  registeredBackends,
  registerPlugin,
  relativeError,
  residualInput,
  resolveBackend,
  runProgramOnce,
  type SignedProgram,
  separableBlockNetwork,
  sizeOf,
  TARGETS,
  trainStepProgram,
} from '@gradfeat/core';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createOnnxBackend, type OnnxBackend, onnxPlugin, saveProgramAsOnnx, traceProgram } from '../src/index.js';

/** float32 kernels against the float64 reference. */
const FLOAT32_TOLERANCE = 1e-4;

// Each geometry takes a different conv lowering (see OnnxGraphBuilder.conv2d and conv2dBackpropInput).
const strided: Conv2DAttrs = { strides: [2, 2], pads: [1, 0, 1, 1], dilations: [1, 1], groups: 2 };
const dilated: Conv2DAttrs = { strides: [1, 1], pads: [1, 0, 1, 2], dilations: [2, 1], groups: 2 };
const same: Conv2DAttrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 };
const pool: PoolAttrs = { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], countIncludePad: false };
const fixedFilter = wave([6, 2, 3, 3], 9);

/** Every kernel whose ONNX lowering depends on the batch size, including ones that sum over it. */
const batchSensitiveKernels: Program = (k, { x, w, dy, dyDilated, dx, image, imageFilter }) => {
  const [, channels, height, width] = k.shape(x);
  const flat = k.reshape(x, [-1, channels * height * width]);
  const imageOutput = k.conv2d(image, imageFilter, undefined, same);
  return {
    // run-time filter, small image: MatMuls per tap; strided, so its transpose is a ConvTranspose
    conv: k.conv2d(x, w, undefined, strided),
    inputGrad: k.conv2dBackpropInput(dy, w, [height, width], strided),
    filterGrad: k.conv2dBackpropFilter(x, dy, k.shape(w), strided),
    // stride 1: the transpose is a conv with the flipped filter, run-time or constant
    dilatedInputGrad: k.conv2dBackpropInput(dyDilated, w, [height, width], dilated),
    constantConv: k.conv2d(x, k.constant(fixedFilter), undefined, dilated),
    constantInputGrad: k.conv2dBackpropInput(dyDilated, k.constant(fixedFilter), [height, width], dilated),
    dilatedFilterGrad: k.conv2dBackpropFilter(x, dyDilated, k.shape(w), dilated),
    // run-time filter on a large image: ONNX Runtime's Conv
    imageConv: imageOutput,
    imageInputGrad: k.conv2dBackpropInput(imageOutput, imageFilter, [18, 17], same),
    imageFilterGrad: k.conv2dBackpropFilter(image, imageOutput, k.shape(imageFilter), same),
    maxJvp: k.maxPoolJvp(x, dx, pool),
    maxBackprop: k.maxPoolBackprop(x, k.mul(k.maxPool(dx, pool), k.scalar(3)), pool),
    avgBackprop: k.avgPoolBackprop(k.avgPool(dx, pool), [height, width], pool),
    gram: k.matMul(flat, flat, true, false),
    batchSum: k.sum(x, [0], false),
    everyOtherRow: k.slice(x, [0, 1, 0, 0], [Number.MAX_SAFE_INTEGER, 3, 100, width], [1, 1, 2, 1]),
  };
};
const batchSensitive: SignedProgram = {
  program: batchSensitiveKernels,
  inputs: inputShapesOf(batchInputs(1), ['x', 'dy', 'dyDilated', 'dx', 'image']),
  outputs: {
    conv: [-1, 6, 4, 3],
    inputGrad: [-1, 4, 7, 6],
    filterGrad: [6, 2, 3, 3],
    dilatedInputGrad: [-1, 4, 7, 6],
    constantConv: [-1, 6, 5, 6],
    constantInputGrad: [-1, 4, 7, 6],
    dilatedFilterGrad: [6, 2, 3, 3],
    imageConv: [-1, 3, 18, 17],
    imageInputGrad: [-1, 2, 18, 17],
    imageFilterGrad: [3, 2, 3, 3],
    maxJvp: [-1, 4, 4, 3],
    maxBackprop: [-1, 4, 7, 6],
    avgBackprop: [-1, 4, 7, 6],
    gram: [168, 168],
    batchSum: [4, 7, 6],
    everyOtherRow: [-1, 2, 4, 6],
  },
};

/** Deterministic, distinct values (no max-pool ties) with a different phase per input. */
function wave(shape: readonly number[], phase: number): HostTensor {
  return hostTensor(
    shape,
    Float32Array.from({ length: sizeOf(shape) }, (_, i) => Math.sin(phase + 0.37 * i)),
  );
}

function batchInputs(batch: number): Record<string, HostTensor> {
  return {
    x: wave([batch, 4, 7, 6], 0),
    w: wave([6, 2, 3, 3], 1),
    dy: wave([batch, 6, 4, 3], 2),
    dyDilated: wave([batch, 6, 5, 6], 3),
    dx: wave([batch, 4, 7, 6], 4),
    image: wave([batch, 2, 18, 17], 5),
    imageFilter: wave([3, 2, 3, 3], 6),
  };
}

describe('ONNX Runtime backend', () => {
  let backend: OnnxBackend;
  beforeAll(async () => {
    backend = await createOnnxBackend();
  });

  it('compiles once for a symbolic batch and runs any batch size on that one session', async () => {
    const create = vi.spyOn(ort.InferenceSession, 'create');
    const compiled = await backend.compile(batchSensitive, { name: 'batch' });
    const reference = createReferenceBackend();
    for (const batch of [2, 5, 1]) {
      const inputs = batchInputs(batch);
      const ours = await compiled.run(inputs);
      const expected = await runProgramOnce(reference, batchSensitive, inputs, `batch ${batch}`);
      for (const [name, want] of Object.entries(expected)) {
        expect(ours[name].shape, `${name} at batch ${batch}`).toEqual(want.shape);
        expect(relativeError(ours[name].data, want.data).relative, `${name} at batch ${batch}`).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      }
    }
    compiled.dispose();
    expect(create).toHaveBeenCalledTimes(1);
    create.mockRestore();
  });

  it('names the program and the kernel when tracing fails', async () => {
    const rows = { x: [-1, 3] };
    const mismatch: Program = (k, { x, b }) => ({ y: k.add(x, b) });
    await expect(
      backend.compile({ program: mismatch, inputs: { ...rows, b: [4] }, outputs: { y: [-1, 3] } }, { name: 'bias-step' }),
    ).rejects.toThrow("program 'bias-step', kernel 'add': shapes [N, 3] and [4] do not broadcast");
    const mergesBatch: Program = (k, { x }) => ({ y: k.reshape(x, [-1]) });
    await expect(backend.compile({ program: mergesBatch, inputs: rows, outputs: { y: [-1] } }, { name: 'flatten-all' })).rejects.toThrow(
      /program 'flatten-all', kernel 'reshape': cannot reshape \[N, 3\] to \[-1\]/,
    );
    const throwsItself: Program = () => {
      throw new Error('no head configured');
    };
    await expect(backend.compile({ program: throwsItself, inputs: rows, outputs: { y: [-1, 3] } }, { name: 'head' })).rejects.toThrow(
      "program 'head' failed while being traced for ONNX Runtime: no head configured",
    );
  });

  it('rejects inputs that do not fit the compiled shapes, saying which and why', async () => {
    const compiled = await backend.compile(
      { program: (k, { x, y }) => ({ z: k.add(x, y) }), inputs: { x: [-1, 3], y: [-1, 3] }, outputs: { z: [-1, 3] } },
      { name: 'sum' },
    );
    const x = { shape: [2, 3], data: new Float32Array(6) };
    await expect(compiled.run({ x })).rejects.toThrow("program 'sum' needs input 'y' of shape [N, 3]");
    await expect(compiled.run({ x, y: { shape: [2, 4], data: new Float32Array(8) } })).rejects.toThrow(
      "program 'sum': input 'y' has shape [2, 4], expected [N, 3]",
    );
    await expect(compiled.run({ x, y: { shape: [1, 3], data: new Float32Array(3) } })).rejects.toThrow(
      "program 'sum': input 'y' has batch size 1 but 'x' has 2",
    );
    await expect(compiled.run({ x, y: x, extra: x })).rejects.toThrow("program 'sum' has no input 'extra' (inputs: x, y)");
    compiled.dispose();
    await expect(compiled.run({ x, y: x })).rejects.toThrow("program 'sum' was disposed");
  });

  it('runs on inputs in memory shared between threads (image batches decoded by workers)', async () => {
    const compiled = await backend.compile(
      { program: (k, { x }) => ({ y: k.mul(x, k.scalar(2)) }), inputs: { x: [-1, 3] }, outputs: { y: [-1, 3] } },
      { name: 'shared' },
    );
    const x = new Float32Array(new SharedArrayBuffer(6 * 4));
    x.set([1, 2, 3, 4, 5, 6]);
    expect([...(await compiled.run({ x: { shape: [2, 3], data: x } })).y.data]).toEqual([2, 4, 6, 8, 10, 12]);
    x.set([0, 0, 0, 0, 0, 1]);
    expect([...(await compiled.run({ x: { shape: [2, 3], data: x } })).y.data]).toEqual([0, 0, 0, 0, 0, 2]);
    compiled.dispose();
  });

  it('returns outputs that are inputs or constants under their own names', async () => {
    const table = { shape: [2], data: Float32Array.of(1.5, -2) };
    const compiled = await backend.compile(
      {
        program: (k, { x }) => ({ x, table: k.constant(table), twice: k.add(x, x) }),
        inputs: { x: [2] },
        outputs: { x: [2], table: [2], twice: [2] },
      },
      { name: 'passthrough' },
    );
    const outputs = await compiled.run({ x: { shape: [2], data: Float32Array.of(3, 4) } });
    expect([...outputs.x.data]).toEqual([3, 4]);
    expect([...outputs.table.data]).toEqual([1.5, -2]);
    expect([...outputs.twice.data]).toEqual([6, 8]);
    compiled.dispose();
  });
});

describe('traced graphs', () => {
  it('store a constant used twice as one initializer, and each scalar value once', () => {
    const table = hostTensor([2, 3], [1, 2, 3, 4, 5, 6]);
    const program: Program = (k, { x }) => ({
      y: k.add(k.mul(x, k.constant(table)), k.constant(table)),
      z: k.mul(k.add(x, k.scalar(0.5)), k.scalar(0.5)),
    });
    const { model } = traceProgram(
      { program, inputs: { x: [-1, 2, 3] }, outputs: { y: [-1, 2, 3], z: [-1, 2, 3] } },
      { name: 'constants' },
    );
    const initializers = onnxProto.onnx.ModelProto.decode(model).graph?.initializer ?? [];
    expect(initializers.filter((t) => t.dims?.join() === '2,3')).toHaveLength(1);
    expect(initializers.filter((t) => t.dims?.length === 0)).toHaveLength(1);
  });
});

describe('ReLU6 lowering', () => {
  /** ReLU6 and its backward as the op rules emit them: min(max(x, 0), 6), and dy times (x > 0)·(x < 6). */
  const shape = [-1, 16, 2, 2];
  const relu6Step: SignedProgram = {
    program: (k, { x, dy }) => {
      const mask = k.mul(k.greater(x, k.scalar(0)), k.less(x, k.scalar(6)));
      return { y: k.minimum(k.maximum(x, k.scalar(0)), k.scalar(6)), dx: k.mul(dy, mask), mask };
    },
    inputs: { x: shape, dy: shape },
    outputs: { y: shape, dx: shape, mask: shape },
  };
  // Exactly 0 and 6 are outside the open interval where ReLU6's derivative is 1 (v + 0 below equates -0 and 0).
  const inputs = {
    x: hostTensor(
      [2, 16, 2, 2],
      Array.from({ length: 128 }, (_, i) => [-1, 0, 3, 6, 7.5, 0.25, 5.75, -0][i % 8]),
    ),
    dy: wave([2, 16, 2, 2], 5),
  };

  it.each([undefined, 16])('is one Clip and one And with blocks of %s channels, with the reference numbers', async (block) => {
    const counts = opCounts(traceProgram(relu6Step, { name: 'relu6', nchwcBlockSize: block }).model);
    expect(counts.get('Clip')).toBe(1);
    expect(counts.get('And')).toBe(1);
    // The mask is written out once as float, for the product with dy and the mask output alike.
    expect(counts.get('Cast')).toBe(1);
    const expected = await runProgramOnce(createReferenceBackend(), relu6Step, inputs, 'reference');
    const actual = await runProgramOnce(await createOnnxBackend({ nchwc: block !== undefined }), relu6Step, inputs, 'relu6');
    for (const name of ['y', 'dx', 'mask'])
      expect(
        Array.from(actual[name].data, (v) => v + 0),
        name,
      ).toEqual(Array.from(expected[name].data, (v) => v + 0));
  });

  it('keeps two Clips when the bounds are out of order or the inner one is read elsewhere', async () => {
    const crossed: SignedProgram = {
      program: (k, { x }) => ({ y: k.minimum(k.maximum(x, k.scalar(6)), k.scalar(0)) }),
      inputs: { x: shape },
      outputs: { y: shape },
    };
    const shared: SignedProgram = {
      program: (k, { x }) => {
        const positive = k.maximum(x, k.scalar(0));
        return { positive, y: k.minimum(positive, k.scalar(6)) };
      },
      inputs: { x: shape },
      outputs: { positive: shape, y: shape },
    };
    for (const [program, clips] of [
      [crossed, 2],
      [shared, 2],
    ] as const) {
      expect(opCounts(traceProgram(program, { name: 'clips' }).model).get('Clip')).toBe(clips);
      const expected = await runProgramOnce(createReferenceBackend(), program, { x: inputs.x }, 'reference');
      const actual = await runProgramOnce(await createOnnxBackend(), program, { x: inputs.x }, 'clips');
      for (const [name, want] of Object.entries(expected))
        expect(
          Array.from(actual[name].data, (v) => v + 0),
          name,
        ).toEqual(Array.from(want.data, (v) => v + 0));
    }
  });
});

/** How many nodes of each (domain-qualified) op type a traced model has. */
function opCounts(model: Uint8Array): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of onnxProto.onnx.ModelProto.decode(model).graph?.node ?? []) {
    const op = node.domain ? `${node.domain}:${node.opType}` : (node.opType as string);
    counts.set(op, (counts.get(op) ?? 0) + 1);
  }
  return counts;
}

/** A head's step on channels in whole blocks: depthwise and pointwise convs with run-time filters, their transposes and gradients. */
const blockedHeadStep: Program = (k, { x, depthwise, pointwise, dy }) => {
  const depthwiseAttrs: Conv2DAttrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 16 };
  const pointwiseAttrs: Conv2DAttrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], groups: 1 };
  const hidden = k.maximum(k.conv2d(x, depthwise, undefined, depthwiseAttrs), k.scalar(0));
  const y = k.conv2d(hidden, pointwise, undefined, pointwiseAttrs);
  const dHidden = k.mul(k.conv2dBackpropInput(dy, pointwise, [5, 5], pointwiseAttrs), k.greater(hidden, k.scalar(0)));
  return {
    pooled: k.sum(y, [2, 3], false),
    pointwiseGrad: k.conv2dBackpropFilter(hidden, dy, k.shape(pointwise), pointwiseAttrs),
    depthwiseGrad: k.conv2dBackpropFilter(x, dHidden, k.shape(depthwise), depthwiseAttrs),
  };
};
const blockedInputs = {
  x: wave([3, 16, 5, 5], 1),
  depthwise: wave([16, 1, 3, 3], 2),
  pointwise: wave([32, 16, 1, 1], 3),
  dy: wave([3, 32, 5, 5], 4),
};
const blockedHead: SignedProgram = {
  program: blockedHeadStep,
  inputs: inputShapesOf(blockedInputs, ['x', 'dy']),
  outputs: { pooled: [-1, 32], pointwiseGrad: [32, 16, 1, 1], depthwiseGrad: [16, 1, 3, 3] },
};

describe('NCHWc lowering', () => {
  it.each([8, 16])('runs every conv of a head on NCHWc kernels with blocks of %i channels', (block) => {
    const counts = opCounts(traceProgram(blockedHead, { name: 'blocked head', nchwcBlockSize: block }).model);
    // depthwise forward, pointwise forward, pointwise input gradient, and the depthwise filter gradient
    expect(counts.get('com.microsoft.nchwc:Conv')).toBe(4);
    expect(counts.get('Slice') ?? 0).toBe(0);
    expect(counts.get('Concat') ?? 0).toBe(0);
  });

  it('runs a depthwise filter gradient traced per batch size, and traced for any batch, with the reference numbers', async () => {
    const block = (await createOnnxBackend()).nchwcBlockSize;
    if (block === undefined) return expect(traceProgram(blockedHead, { name: 'portable' }).fasterPerBatchSize).toBe(false);
    // Traced for any batch: the tall-image lowering, run as it is.
    const anyBatch = traceProgram(blockedHead, { name: 'any batch', nchwcBlockSize: block });
    expect(anyBatch.fasterPerBatchSize).toBe(true);
    const session = await ort.InferenceSession.create(anyBatch.model);
    const reference = createReferenceBackend();
    const feeds = Object.fromEntries(Object.entries(blockedInputs).map(([name, t]) => [name, new ort.Tensor('float32', t.data, t.shape)]));
    const symbolic = await session.run(feeds);
    await session.release();
    const expected = await runProgramOnce(reference, blockedHead, blockedInputs, 'reference');
    for (const [name, want] of Object.entries(expected)) {
      expect(relativeError(symbolic[anyBatch.outputNames[name]].data as Float32Array, want.data).relative, name).toBeLessThanOrEqual(
        FLOAT32_TOLERANCE,
      );
    }
    // Compiled: one session per batch size, more sizes than it keeps, and a size again after its session went.
    const backend = await createOnnxBackend();
    const compiled = await backend.compile(blockedHead, { name: 'per batch size' });
    for (const batch of [3, 1, 2, 4, 5, 6, 3]) {
      const inputs = { ...blockedInputs, x: wave([batch, 16, 5, 5], batch), dy: wave([batch, 32, 5, 5], batch + 10) };
      const want = await runProgramOnce(reference, blockedHead, inputs, 'reference');
      const actual = await compiled.run(inputs);
      for (const [name, value] of Object.entries(want)) {
        expect(relativeError(actual[name].data, value.data).relative, `${name}, batch ${batch}`).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      }
    }
    compiled.dispose();
  });

  it('multiplies a blocked value by one factor per image and channel as one depthwise conv per batch size, bit for bit', async () => {
    const backend = await createOnnxBackend();
    const block = backend.nchwcBlockSize;
    const inputs = { x: wave([3, 16, 5, 5], 1), w: wave([16, 16, 3, 3], 2), factors: wave([3, 16, 1, 1], 3) };
    // The conv leaves its output blocked; the factors are what a pooled gradient spread over the pixels is.
    const program = (batchInputs: string[]): SignedProgram => ({
      program: (k, { x, w, factors }) => {
        const blocked = k.conv2d(x, w, undefined, same);
        return { blocked, product: k.mul(factors, blocked) };
      },
      inputs: inputShapesOf(inputs, batchInputs),
      outputs: { blocked: [batchInputs.length > 0 ? -1 : 3, 16, 5, 5], product: [batchInputs.length > 0 ? -1 : 3, 16, 5, 5] },
    });
    if (block === undefined) return expect(traceProgram(program(['x', 'factors']), { name: 'portable' }).fasterPerBatchSize).toBe(false);
    const anyBatch = traceProgram(program(['x', 'factors']), { name: 'any batch', nchwcBlockSize: block });
    expect(anyBatch.fasterPerBatchSize).toBe(true);
    expect(opCounts(anyBatch.model).get('Mul')).toBe(1);
    const fixed = onnxProto.onnx.ModelProto.decode(traceProgram(program([]), { name: 'batch of 3', nchwcBlockSize: block }).model);
    const nodes = fixed.graph?.node ?? [];
    expect(nodes.filter((node) => node.opType === 'Mul')).toEqual([]);
    const groups = nodes.filter((node) => node.opType === 'Conv').map((node) => node.attribute?.find((a) => a.name === 'group')?.i ?? 1);
    expect(groups.map(Number).sort((a, b) => a - b)).toEqual([1, 3 * 16]);
    // Compiled for any batch, it runs one session per batch size; each product is the one float32 multiplication.
    const compiled = await backend.compile(program(['x', 'factors']), { name: 'per image and channel' });
    for (const batch of [3, 2]) {
      const { blocked, product } = await compiled.run({
        ...inputs,
        x: wave([batch, 16, 5, 5], batch),
        factors: wave([batch, 16, 1, 1], batch + 4),
      });
      const factors = wave([batch, 16, 1, 1], batch + 4).data;
      const expected = Array.from(blocked.data, (v, i) => Math.fround(v * factors[Math.floor(i / 25)]));
      expect(Array.from(product.data), `batch ${batch}`).toEqual(expected);
    }
    compiled.dispose();
  });

  it("takes a wide pointwise filter's gradient as one channels-first GEMM, with the reference numbers", async () => {
    const pointwise: Conv2DAttrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], groups: 1 };
    const inputs = { x: wave([3, 256, 3, 2], 1), dy: wave([3, 256, 3, 2], 2) };
    const program: SignedProgram = {
      program: (k, { x, dy }) => ({ dw: k.conv2dBackpropFilter(x, dy, [256, 256, 1, 1], pointwise) }),
      inputs: inputShapesOf(inputs, ['x', 'dy']),
      outputs: { dw: [256, 256, 1, 1] },
    };
    const traced = traceProgram(program, { name: 'wide pointwise' });
    expect(opCounts(traced.model).get('Gemm')).toBe(1);
    expect(opCounts(traced.model).get('MatMul') ?? 0).toBe(0);
    const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
    const actual = await runProgramOnce(await createOnnxBackend(), program, inputs, 'wide pointwise');
    expect(relativeError(actual.dw.data, expected.dw.data).relative).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
  });

  it("sums a conv's bias gradient over dy's channels-first rows when its filter gradient made them", async () => {
    const pointwise: Conv2DAttrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], groups: 1 };
    const inputs = { x: wave([3, 256, 3, 2], 1), dy: wave([3, 256, 3, 2], 2) };
    const program: SignedProgram = {
      program: (k, { x, dy }) => ({
        dw: k.conv2dBackpropFilter(x, dy, [256, 256, 1, 1], pointwise),
        db: k.sum(dy, [0, 2, 3], false),
        kept: k.sum(dy, [0, 2, 3], true),
      }),
      inputs: inputShapesOf(inputs, ['x', 'dy']),
      outputs: { dw: [256, 256, 1, 1], db: [256], kept: [1, 256, 1, 1] },
    };
    const { model } = traceProgram(program, { name: 'bias gradient', nchwcBlockSize: 16 });
    const nodes = onnxProto.onnx.ModelProto.decode(model).graph?.node ?? [];
    // Only x and dy move to channels-first; both sums read dy's [C, N·h·w] rows along their axis 1.
    expect(opCounts(model).get('Transpose')).toBe(2);
    const producer = new Map(nodes.flatMap((node) => (node.output ?? []).map((name) => [name, node] as const)));
    const sums = nodes.filter((node) => node.opType === 'ReduceSum');
    expect(sums).toHaveLength(2);
    for (const sum of sums) {
      const rows = producer.get(sum.input?.[0] ?? '');
      expect(rows?.opType).toBe('Reshape');
      expect(producer.get(rows?.input?.[0] ?? '')?.opType).toBe('Transpose');
    }
    const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
    const actual = await runProgramOnce(await createOnnxBackend(), program, inputs, 'bias gradient');
    for (const name of ['dw', 'db', 'kept']) {
      expect(relativeError(actual[name].data, expected[name].data).relative, name).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
    }
  });

  it("flips a run-time filter and moves its gradient's taps last as GEMMs with permutation matrices, with the reference numbers", async () => {
    const inputs = { x: wave([2, 16, 6, 5], 5), w: wave([16, 16, 3, 3], 6), dy: wave([2, 16, 6, 5], 7) };
    const program: SignedProgram = {
      program: (k, { x, w, dy }) => ({
        dx: k.conv2dBackpropInput(dy, w, [6, 5], same),
        dw: k.conv2dBackpropFilter(x, dy, [16, 16, 3, 3], same),
      }),
      inputs: inputShapesOf(inputs, ['x', 'dy']),
      outputs: { dx: [-1, 16, 6, 5], dw: [16, 16, 3, 3] },
    };
    const graph = onnxProto.onnx.ModelProto.decode(traceProgram(program, { name: 'tap permutations', nchwcBlockSize: 16 }).model).graph;
    const nineByNine = new Set((graph?.initializer ?? []).filter((t) => t.dims?.map(Number).join() === '9,9').map((t) => t.name));
    const nodes = graph?.node ?? [];
    expect(nodes.filter((node) => node.opType === 'Slice')).toEqual([]);
    expect(nodes.filter((node) => node.opType === 'MatMul' && nineByNine.has(node.input?.[1] ?? ''))).toHaveLength(2);
    const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
    const actual = await runProgramOnce(await createOnnxBackend(), program, inputs, 'tap permutations');
    for (const name of ['dx', 'dw']) {
      expect(relativeError(actual[name].data, expected[name].data).relative, name).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
    }
  });

  it("multiplies a large filter gradient's dy channels-first, neither GEMM operand transposed, with the reference numbers", async () => {
    const inputs = { x: wave([2, 128, 3, 4], 8), dy: wave([2, 128, 3, 4], 9) };
    const program: SignedProgram = {
      program: (k, { x, dy }) => ({ dw: k.conv2dBackpropFilter(x, dy, [128, 128, 3, 3], same), db: k.sum(dy, [0, 2, 3], false) }),
      inputs: inputShapesOf(inputs, ['x', 'dy']),
      outputs: { dw: [128, 128, 3, 3], db: [128] },
    };
    const nodes =
      onnxProto.onnx.ModelProto.decode(traceProgram(program, { name: 'large filter gradient', nchwcBlockSize: 16 }).model).graph?.node ??
      [];
    const producer = new Map(nodes.flatMap((node) => (node.output ?? []).map((name) => [name, node] as const)));
    const gemms = nodes.filter((node) => node.opType === 'Gemm');
    expect(gemms).toHaveLength(1);
    expect(gemms[0].attribute ?? []).toEqual([]);
    const dyChannelsFirst = producer.get(gemms[0].input?.[0] ?? '');
    expect(producer.get(dyChannelsFirst?.input?.[0] ?? '')?.opType).toBe('Transpose');
    const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
    const actual = await runProgramOnce(await createOnnxBackend(), program, inputs, 'large filter gradient');
    for (const name of ['dw', 'db']) {
      expect(relativeError(actual[name].data, expected[name].data).relative, name).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
    }
  });

  it("folds a same-shape Add into a conv's Sum, and a ReLU after it into its activation, with the reference numbers", async () => {
    const inputs = { x: wave([2, 16, 5, 4], 13), w: wave([16, 16, 3, 3], 14), v: wave([16, 16, 3, 3], 15), b: wave([1, 16, 1, 1], 16) };
    const sums = (returnConv: boolean): SignedProgram => ({
      program: (k, { x, w, v, b }) => {
        const first = k.conv2d(x, w, undefined, same);
        const second = k.conv2d(x, v, undefined, same);
        // y: a residual block's relu(conv + conv); shifted: a broadcast Add, which is no conv's Sum.
        const y = k.maximum(k.add(first, second), k.scalar(0));
        return { y, shifted: k.add(k.conv2d(y, w, undefined, same), b), ...(returnConv ? { second, first } : {}) };
      },
      inputs: inputShapesOf(inputs, ['x']),
      outputs: { y: [-1, 16, 5, 4], shifted: [-1, 16, 5, 4], ...(returnConv ? { first: [-1, 16, 5, 4], second: [-1, 16, 5, 4] } : {}) },
    });
    const nodesOf = (program: SignedProgram) =>
      onnxProto.onnx.ModelProto.decode(traceProgram(program, { name: 'sums', nchwcBlockSize: 16 }).model).graph?.node ?? [];
    const folded = nodesOf(sums(false));
    const convs = folded.filter((node) => node.opType === 'Conv');
    expect(convs.map((node) => node.input?.length)).toEqual([2, 4, 2]);
    expect(convs[1].input?.[3]).toBe(convs[0].output?.[0]);
    expect(new TextDecoder().decode(convs[1].attribute?.find((a) => a.name === 'activation')?.s ?? new Uint8Array())).toBe('Relu');
    expect(folded.filter((node) => node.opType === 'Add')).toHaveLength(1);
    // Conv outputs read elsewhere (here returned) keep the Add.
    const kept = nodesOf(sums(true));
    expect(kept.filter((node) => node.opType === 'Add')).toHaveLength(2);
    expect(kept.filter((node) => node.opType === 'Conv').map((node) => node.input?.length)).toEqual([2, 2, 2]);
    for (const program of [sums(false), sums(true)]) {
      const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
      const actual = await runProgramOnce(await createOnnxBackend(), program, inputs, 'sums');
      for (const name of Object.keys(expected)) {
        expect(relativeError(actual[name].data, expected[name].data).relative, name).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      }
    }
  });

  it("folds a conv's ReLU6 into the conv when its backward mask can read the ReLU6's output, with the reference numbers", async () => {
    const inputs = { x: wave([2, 16, 5, 4], 10), w: wave([16, 16, 3, 3], 11), dy: wave([2, 16, 5, 4], 12) };
    const relu6Step = (returnPreActivation: boolean): SignedProgram => ({
      program: (k, { x, w, dy }) => {
        const pre = k.conv2d(x, w, undefined, same);
        const y = k.minimum(k.maximum(pre, k.scalar(0)), k.scalar(6));
        const mask = k.mul(k.greater(pre, k.scalar(0)), k.less(pre, k.scalar(6)));
        return { y, dx: k.conv2dBackpropInput(k.mul(dy, mask), w, [5, 4], same), ...(returnPreActivation ? { pre } : {}) };
      },
      inputs: inputShapesOf(inputs, ['x', 'dy']),
      outputs: { y: [-1, 16, 5, 4], dx: [-1, 16, 5, 4], ...(returnPreActivation ? { pre: [-1, 16, 5, 4] } : {}) },
    });
    const nodesOf = (program: SignedProgram) =>
      onnxProto.onnx.ModelProto.decode(traceProgram(program, { name: 'relu6', nchwcBlockSize: 16 }).model).graph?.node ?? [];
    const activations = (nodes: ReturnType<typeof nodesOf>) =>
      nodes.flatMap((node) => node.attribute?.filter((a) => a.name === 'activation_params').map((a) => a.floats) ?? []);
    const folded = nodesOf(relu6Step(false));
    expect(folded.filter((node) => node.opType === 'Clip')).toEqual([]);
    expect(activations(folded)).toEqual([[0, 6]]);
    // A pre-activation read elsewhere (here returned) keeps its Clip.
    const kept = nodesOf(relu6Step(true));
    expect(kept.filter((node) => node.opType === 'Clip')).toHaveLength(1);
    expect(activations(kept)).toEqual([]);
    for (const program of [relu6Step(false), relu6Step(true)]) {
      const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
      const actual = await runProgramOnce(await createOnnxBackend(), program, inputs, 'relu6');
      for (const name of Object.keys(expected)) {
        expect(relativeError(actual[name].data, expected[name].data).relative, name).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      }
    }
  });

  it.each([8, 16])(
    "takes a 3×3 filter gradient's channels-last rows through the blocked layout (blocks of %i), not an element-wise Transpose",
    async (block) => {
      const inputs = { x: wave([2, 16, 6, 5], 3), dy: wave([2, 16, 6, 5], 4) };
      const program: SignedProgram = {
        program: (k, { x, dy }) => ({ dw: k.conv2dBackpropFilter(x, dy, [16, 16, 3, 3], same) }),
        inputs: inputShapesOf(inputs, ['x', 'dy']),
        outputs: { dw: [16, 16, 3, 3] },
      };
      const nodes =
        onnxProto.onnx.ModelProto.decode(traceProgram(program, { name: 'channels-last rows', nchwcBlockSize: block }).model).graph?.node ??
        [];
      const toChannelsLast = (node: (typeof nodes)[number]) =>
        node.opType === 'Transpose' && node.attribute?.some((a) => a.name === 'perm' && a.ints?.join() === '0,2,3,1');
      expect(nodes.filter(toChannelsLast)).toEqual([]);
      expect(nodes.filter((node) => node.opType === 'ReorderOutput')).toHaveLength(2);
      const backend = await createOnnxBackend();
      if (backend.nchwcBlockSize !== block) return;
      const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
      const actual = await runProgramOnce(backend, program, inputs, 'channels-last rows');
      expect(relativeError(actual.dw.data, expected.dw.data).relative).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
    },
  );

  it('relays constant filters out with ONNX operators, which ONNX Runtime folds when it loads: no filter reorder runs per step', async () => {
    const dense = wave([16, 16, 3, 3], 13);
    const depthwise = wave([16, 1, 3, 3], 14);
    const inputs = { x: wave([2, 16, 5, 4], 15) };
    const program: SignedProgram = {
      program: (k, { x }) => ({
        y: k.conv2d(k.conv2d(x, k.constant(dense), undefined, same), k.constant(depthwise), undefined, { ...same, groups: 16 }),
      }),
      inputs: inputShapesOf(inputs, ['x']),
      outputs: { y: [-1, 16, 5, 4] },
    };
    const dir = await mkdtemp(join(tmpdir(), 'gradfeat-folded-'));
    try {
      const optimizedModelFilePath = join(dir, 'optimized.onnx');
      const backend = await createOnnxBackend({ sessionOptions: { optimizedModelFilePath } });
      const expected = await runProgramOnce(createReferenceBackend(), program, inputs, 'reference');
      const actual = await runProgramOnce(backend, program, inputs, 'constant filters');
      expect(relativeError(actual.y.data, expected.y.data).relative).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
      if (backend.nchwcBlockSize === undefined) return;
      const optimized = onnxProto.onnx.ModelProto.decode(await readFile(optimizedModelFilePath)).graph;
      const ops = (optimized?.node ?? []).map((node) => node.opType);
      // Left per run: x into blocks, the two convs, the result out of blocks.
      expect(ops.filter((op) => op === 'Transpose')).toEqual([]);
      expect(ops.filter((op) => op === 'ReorderInput')).toHaveLength(1);
      expect(ops.filter((op) => op === 'Conv')).toHaveLength(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps exported (portable) graphs free of ONNX Runtime-only operators', () => {
    const counts = opCounts(traceProgram(blockedHead, { name: 'portable head' }).model);
    expect([...counts.keys()].filter((op) => op.includes('.'))).toEqual([]);
  });

  it('gives the reference numbers on whichever layout this CPU has', async () => {
    const backend = await createOnnxBackend();
    const expected = await runProgramOnce(createReferenceBackend(), blockedHead, blockedInputs, 'reference');
    const actual = await runProgramOnce(backend, blockedHead, blockedInputs, 'blocked head');
    for (const [name, want] of Object.entries(expected)) {
      expect(relativeError(actual[name].data, want.data).relative, name).toBeLessThanOrEqual(FLOAT32_TOLERANCE);
    }
  });
});

describe('linearised steps at a cached point on ONNX Runtime', () => {
  const networks = {
    'a depthwise-separable block (ReLU6)': separableBlockNetwork({ channels: 16, size: 5, classes: 4, seed: 1 }),
    'a basic residual block (ReLU)': basicBlockNetwork({ channels: 16, size: 4, classes: 4, seed: 2 }),
  };
  for (const [what, network] of Object.entries(networks)) {
    for (const method of ['gradient', 'full'] as const) {
      it(`${method}, ${what}: same loss and gradients as evaluating the head (1e-5 relative)`, async () => {
        const backend = await createOnnxBackend();
        const model = linearise(network, { cut: 'input' });
        const omega = model.sourceClassifier;
        const rng = new Rng(7);
        const params = initialParams(model, method, omega);
        for (const [name, value] of params) params.set(name, normalTensor(rng, value.shape, 0.1));
        const cut = normalTensor(rng, [6, ...model.cutShape]);
        const feeds: Record<string, HostTensor> = {
          [INPUT]: cut,
          [TARGETS]: oneHot([0, 1, 2, 3, 0, 1], 4),
          [BATCH_SCALE]: hostTensor([1], [1 / 6]),
          ...Object.fromEntries(params),
        };
        const point = await runProgramOnce(backend, linearisationPointProgram(model), { [INPUT]: cut }, 'point');
        if (method === 'gradient') delete point[FEATURES];
        const step = (cachedPoint: boolean, inputs: Record<string, HostTensor>) =>
          runProgramOnce(backend, trainStepProgram(model, method, omega, 'softmax-ce', { cachedPoint }), inputs, method);
        const recomputed = await step(false, feeds);
        const cached = await step(true, { ...feeds, ...point });
        for (const name of [LOSS, ...[...params.keys()].map(gradName)]) {
          expect(relativeError(cached[name].data, recomputed[name].data).relative, name).toBeLessThanOrEqual(1e-5);
        }
      });
    }

    it(`${what}: residuals pass between the point and the step in NCHWc blocks of 16, never reordered`, () => {
      const model = linearise(network, { cut: 'input' });
      const nodesOf = (program: SignedProgram) =>
        onnxProto.onnx.ModelProto.decode(traceProgram(program, { name: 'point', nchwcBlockSize: 16 }).model).graph?.node ?? [];
      const residuals = [...pointResiduals(model).keys()].map(residualInput);
      const pointNodes = nodesOf(linearisationPointProgram(model));
      const producer = new Map(pointNodes.flatMap((node) => (node.output ?? []).map((name) => [name, node] as const)));
      // Each residual output (an Identity) is an NCHWc value as it is: not reordered, transposed or reshaped into order.
      for (const name of residuals) {
        const identity = producer.get(name);
        expect(identity?.opType, name).toBe('Identity');
        expect(producer.get(identity?.input?.[0] ?? '')?.opType, name).not.toMatch(/^(ReorderOutput|Transpose|Reshape)$/);
      }
      // And the step reads them as they come: no reorder or transpose of a residual, directly or after a reshape.
      const stepNodes = nodesOf(trainStepProgram(model, 'full', model.sourceClassifier, 'softmax-ce', { cachedPoint: true }));
      const readers = (names: readonly string[]) => stepNodes.filter((node) => node.input?.some((input) => names.includes(input)));
      const direct = readers(residuals);
      const afterReshape = readers(direct.filter((node) => node.opType === 'Reshape').flatMap((node) => node.output ?? []));
      expect([...direct, ...afterReshape].filter((node) => /^(ReorderInput|Transpose)$/.test(node.opType ?? ''))).toEqual([]);
    });
  }
});

describe('plugin', () => {
  it('registers as onnx with priority 20 and resolves to the CPU backend', async () => {
    registerPlugin(onnxPlugin);
    registerPlugin(onnxPlugin);
    expect(
      registeredBackends()
        .filter((p) => p.name === 'onnx')
        .map((p) => p.priority),
    ).toEqual([20]);
    expect((await resolveBackend('onnx')).name).toBe('onnxruntime-cpu');
  });
});

describe('execution providers', () => {
  it('falls back from CUDA to the CPU with the reason, or runs on CUDA where it starts', async () => {
    const reasons: string[] = [];
    const backend = await createOnnxBackend({ executionProviders: ['cuda', 'cpu'], onFallback: (reason) => reasons.push(reason) });
    if (backend.executionProvider === 'cpu') {
      expect(backend.name).toBe('onnxruntime-cpu');
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toMatch(/^ONNX Runtime runs on cpu; skipped cuda: ./);
      expect(backend.fallbackReason).toBe(reasons[0]);
      await expect(createOnnxBackend({ executionProviders: ['cuda'] })).rejects.toThrow(
        /no ONNX Runtime execution provider could start:\n {2}cuda: ./,
      );
    } else {
      expect(backend.name).toBe('onnxruntime-cuda');
      expect(reasons).toEqual([]);
    }
  });
});

const filter = wave([5, 3, 3, 3], 4);
const bias = wave([5], 5);
const classifier = wave([4, 5], 6);

/** A small trained head: weights are constants baked into the file, images the only input. */
const headOutputs: Program = (k, { images }) => {
  const activations = k.maximum(
    k.conv2d(images, k.constant(filter), k.constant(bias), { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 }),
    k.scalar(0),
  );
  const features = k.reshape(k.mul(k.sum(activations, [2, 3], false), k.scalar(1 / 36)), [-1, 5]);
  return { features, logits: k.matMul(features, k.constant(classifier), false, true), images: k.abs(images) };
};
const head: SignedProgram = {
  program: headOutputs,
  inputs: { images: [-1, 3, 6, 6] },
  outputs: { features: [-1, 5], logits: [-1, 4], images: [-1, 3, 6, 6] },
};

describe('saveProgramAsOnnx', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gradfeat-onnx-export-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a standalone model with readable names that ONNX Runtime runs like the program', async () => {
    const path = join(dir, 'head.onnx');
    const saved = await saveProgramAsOnnx(head, path, {
      name: 'head',
      metadata: { method: 'gradient features' },
    });
    expect(saved.outputs).toEqual({ features: 'features', logits: 'logits', images: 'images_output' });
    expect(await readdir(dir)).toEqual(['head.onnx']);

    const model = onnxProto.onnx.ModelProto.decode(await readFile(path));
    expect(model.graph?.name).toBe('head');
    expect(model.metadataProps.map((p) => [p.key, p.value])).toEqual([['method', 'gradient features']]);
    expect(model.graph?.input?.[0].type?.tensorType?.shape?.dim?.[0].dimParam).toBe('N');

    const session = await ort.InferenceSession.create(path);
    expect(session.inputNames).toEqual(['images']);
    expect([...session.outputNames].sort()).toEqual(['features', 'images_output', 'logits']);
    const images = wave([3, 3, 6, 6], 7);
    const results = await session.run({ images: new ort.Tensor('float32', images.data, images.shape) });
    await session.release();
    const expected = await runProgramOnce(createReferenceBackend(), head, { images }, 'head');
    for (const [key, onnxName] of Object.entries(saved.outputs)) {
      expect(results[onnxName].dims).toEqual(expected[key].shape);
      expect(relativeError(results[onnxName].data as Float32Array, expected[key].data).relative, key).toBeLessThanOrEqual(1e-5);
    }
  });

  it('reports the destination and leaves no temporary file when it cannot write', async () => {
    const path = join(dir, 'missing', 'head.onnx');
    await expect(saveProgramAsOnnx(head, path)).rejects.toThrow(`could not write the ONNX model to '${path}'`);
    expect(await readdir(dir)).not.toContain('missing');
  });
});
