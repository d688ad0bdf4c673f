import { constantParams, evaluate, type Graph, type HostTensor, inferShapes, Rng, referenceKernels, relativeError } from '@gradfeat/core';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { importOnnx } from '../src/index.js';
import { floats, int64s, type ModelSpec, modelBytes, node, randomFloats } from './model-builder.js';

const { DataType } = onnxProto.onnx.TensorProto;
const INT64_MAX = '9223372036854775807';
/** Our float64 evaluation against ONNX Runtime's float32 kernels. */
const TOLERANCE = 1e-5;

function uniformInput(rng: Rng, shape: number[]): HostTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: count }, () => rng.uniform() * 4 - 2) };
}

/** Our imported graph on the float64 reference kernels vs ONNX Runtime on the original bytes. */
async function compareWithOrt(bytes: Uint8Array, graph: Graph, input: HostTensor): Promise<number> {
  const session = await ort.InferenceSession.create(bytes);
  const expected = await session.run({ [graph.inputs[0].name]: new ort.Tensor('float32', input.data, [...input.shape]) });
  await session.release();
  const k = referenceKernels();
  const values = evaluate(k, graph, { [graph.inputs[0].name]: k.constant(input) }, constantParams(k, graph));
  let worst = 0;
  for (const output of graph.outputs) {
    const ours = values.get(output);
    expect(ours?.shape).toEqual(expected[output].dims);
    worst = Math.max(worst, relativeError(ours?.data ?? [], expected[output].data as Float32Array).relative);
  }
  return worst;
}

describe('ONNX import of individual ops, checked against ONNX Runtime', () => {
  it('maps opset-13 convolutions, pooling, activations, folded pads and slices, reshape by batch, Gemm and MatMul + Add', async () => {
    const rng = new Rng(3);
    const spec: ModelSpec = {
      input: { name: 'x', dims: ['N', 3, 9, 9] },
      outputs: ['y', 'pooled'],
      initializers: [
        randomFloats(rng, 'W1', [4, 3, 4, 4]),
        randomFloats(rng, 'B1', [4]),
        floats('bn.scale', [4], [1.5, 0.5, 1, 2]),
        floats('bn.bias', [4], [0.1, -0.2, 0.3, 0]),
        floats('bn.mean', [4], [0.2, 0, -0.1, 0.05]),
        floats('bn.var', [4], [0.5, 1.5, 1, 2]),
        randomFloats(rng, 'Wd', [4, 1, 2, 2]),
        randomFloats(rng, 'G', [72, 10]),
        randomFloats(rng, 'C', [10]),
        randomFloats(rng, 'M', [10, 5]),
        randomFloats(rng, 'bias', [5]),
        floats('zero', [], [0]),
        floats('six', [], [6]),
      ],
      nodes: [
        // SAME_UPPER with an even kernel on an odd size pads 1 before and 2 after.
        node('Conv', ['x', 'W1', 'B1'], 'c1', { auto_pad: 'SAME_UPPER', strides: [2, 2], kernel_shape: [4, 4] }),
        node('Clip', ['c1', 'zero', 'six'], 'relu6'),
        node('BatchNormalization', ['c1', 'bn.scale', 'bn.bias', 'bn.mean', 'bn.var'], 'bn', { epsilon: { float: 1e-3 } }),
        node('Relu', ['bn'], 'relu'),
        node('Add', ['relu6', 'relu'], 'sum'),
        // Depthwise, SAME_LOWER: the odd pixel of padding goes first.
        node('Conv', ['sum', 'Wd'], 'dw', { auto_pad: 'SAME_LOWER', group: 4 }),
        node('LeakyRelu', ['dw'], 'leaky', { alpha: { float: 0.2 } }),
        node('MaxPool', ['leaky'], 'max', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
        node('AveragePool', ['leaky'], 'avgIncl', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 }),
        node('AveragePool', ['leaky'], 'avgExcl', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
        node('Concat', ['max', 'avgIncl', 'avgExcl'], 'cat', { axis: -3 }),
        node('GlobalAveragePool', ['cat'], 'pooled'),
        // pads = [0, 0, 1, 0, 0, 0, 0, 1] assembled like PyTorch's F.pad export: one row above, one column right.
        node('Constant', [], 'two', { value: int64s('', [2]) }),
        node('ConstantOfShape', ['two'], 'zeros2', { value: int64s('', [0]) }),
        node('Constant', [], 'hPad', { value: int64s('', [1, 0]) }),
        node('Constant', [], 'wPad', { value_ints: [0, 1] }),
        node('Concat', ['zeros2', 'hPad', 'zeros2', 'wPad'], 'padsInt', { axis: 0 }),
        node('Cast', ['padsInt'], 'pads', { to: DataType.INT64 }),
        node('Pad', ['cat', 'pads'], 'padded', { mode: 'constant' }),
        // Rows from the third-last on, every other column of the first three: negative start, INT64_MAX end, negative axis.
        node('Constant', [], 'starts', { value: int64s('', [-3, 0]) }),
        node('Constant', [], 'ends', { value: int64s('', [INT64_MAX, 3]) }),
        node('Constant', [], 'axes', { value: int64s('', [2, -1]) }),
        node('Constant', [], 'steps', { value: int64s('', [1, 2]) }),
        node('Slice', ['padded', 'starts', 'ends', 'axes', 'steps'], 'sliced'),
        node('Dropout', ['sliced'], 'dropped'),
        node('Identity', ['dropped'], 'same'),
        // view(x.size(0), -1): the target's first entry is the batch size, read from the input's shape.
        node('Shape', ['same'], 'shape'),
        node('Constant', [], 'zeroIndex', { value: int64s('', [0], []) }),
        node('Gather', ['shape', 'zeroIndex'], 'batch', { axis: 0 }),
        node('Constant', [], 'unsqueezeAxes', { value: int64s('', [0]) }),
        node('Unsqueeze', ['batch', 'unsqueezeAxes'], 'batch1'),
        node('Constant', [], 'minusOne', { value: int64s('', [-1]) }),
        node('Concat', ['batch1', 'minusOne'], 'target', { axis: 0 }),
        node('Reshape', ['same', 'target'], 'flat'),
        node('Gemm', ['flat', 'G', 'C'], 'gemm', { alpha: { float: 0.5 }, beta: { float: 2 } }),
        node('MatMul', ['gemm', 'M'], 'mm'),
        node('Add', ['mm', 'bias'], 'y'),
      ],
    };
    const bytes = modelBytes(spec);
    const graph = importOnnx(bytes, { source: 'ops13.onnx' });
    const shapes = inferShapes(graph);
    expect(graph.nodes.map((n) => n.op)).toEqual([
      'Conv2D',
      'ReLU6',
      'BatchNorm',
      'ReLU',
      'Add',
      'Conv2D',
      'LeakyReLU',
      'MaxPool',
      'AvgPool',
      'AvgPool',
      'Concat',
      'GlobalAvgPool',
      'Pad',
      'Slice',
      'Identity',
      'Identity',
      'Reshape',
      'Dense',
      'Dense',
    ]);
    const attrsOf = (name: string) => graph.nodes.find((n) => n.name === name)?.attrs;
    expect(attrsOf('c1')).toEqual({ strides: [2, 2], dilations: [1, 1], pads: [1, 1, 2, 2], groups: 1 });
    expect(attrsOf('dw')).toEqual({ strides: [1, 1], dilations: [1, 1], pads: [1, 1, 0, 0], groups: 4 });
    expect(attrsOf('padded')).toEqual({ pads: [0, 1, 0, 0, 0, 1] });
    expect(attrsOf('sliced')).toEqual({ begins: [0, 1, 0], ends: [12, 4, 3], steps: [1, 1, 2] });
    expect(attrsOf('flat')).toEqual({ shape: [-1] });
    expect(shapes.get('y')).toEqual([-1, 5]);
    // MatMul + Add became one Dense computing the Add's output, with the bias.
    expect(Object.keys(graph.nodes.find((n) => n.name === 'y')?.params ?? {})).toEqual(['weight', 'bias']);

    for (const batch of [1, 3]) {
      const error = await compareWithOrt(bytes, graph, uniformInput(rng, [batch, 3, 9, 9]));
      expect(error, `batch ${batch}`).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('reads opset-9 attributes: Pad pads, Slice starts/ends/axes, Clip min/max, Unsqueeze axes', async () => {
    const spec: ModelSpec = {
      opset: 9,
      input: { name: 'image', dims: [1, 2, 5, 5] },
      outputs: ['out'],
      nodes: [
        node('Pad', ['image'], 'padded', { pads: [0, 0, 2, 1, 0, 0, 0, 1] }),
        node('Slice', ['padded'], 'sliced', { starts: [1, -4], ends: [6, 100], axes: [2, 3] }),
        node('Clip', ['sliced'], 'clipped', { min: { float: 0 }, max: { float: 6 } }),
        node('Flatten', ['clipped'], 'flat'),
        node('Shape', ['flat'], 'shape'),
        node('Constant', [], 'one', { value: int64s('', [1], []) }),
        node('Gather', ['shape', 'one'], 'features', { axis: 0 }),
        node('Unsqueeze', ['features'], 'features1', { axes: [0] }),
        node('Constant', [], 'batchCopy', { value: int64s('', [0]) }),
        node('Concat', ['batchCopy', 'features1'], 'target', { axis: 0 }),
        node('Reshape', ['flat', 'target'], 'out'),
      ],
    };
    const bytes = modelBytes(spec);
    const graph = importOnnx(bytes);
    // A file with a fixed batch of 1 still imports with a free batch.
    expect(graph.inputs).toEqual([{ name: 'image', shape: [-1, 2, 5, 5] }]);
    expect(graph.nodes.find((n) => n.op === 'Slice')?.attrs).toEqual({ begins: [0, 1, 3], ends: [2, 6, 7], steps: [1, 1, 1] });
    expect(graph.nodes.find((n) => n.op === 'ReLU6')).toBeDefined();
    expect(inferShapes(graph).get('out')).toEqual([-1, 40]);
    expect(await compareWithOrt(bytes, graph, uniformInput(new Rng(5), [1, 2, 5, 5]))).toBeLessThanOrEqual(TOLERANCE);
  });

  it('records preprocessing and class names only when metadata_props state them', () => {
    const spec: ModelSpec = { input: { name: 'x', dims: ['N', 3, 4, 4] }, outputs: ['y'], nodes: [node('Relu', ['x'], 'y')] };
    expect(importOnnx(modelBytes(spec)).metadata).toEqual({});
    const preprocessing = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], size: [4, 4] };
    const described = modelBytes({ ...spec, metadata: { preprocessing: JSON.stringify(preprocessing), class_names: '["cat","dog"]' } });
    expect(importOnnx(described, { source: 'described.onnx' }).metadata).toEqual({
      source: 'described.onnx',
      preprocessing,
      classNames: ['cat', 'dog'],
    });
    const wrong = modelBytes({ ...spec, metadata: { preprocessing: '{"mean": [0.5]}' } });
    expect(() => importOnnx(wrong, { source: 'wrong.onnx' })).toThrow(
      "wrong.onnx: metadata_props 'preprocessing': field 'mean' must be three numbers (R, G, B)",
    );
  });
});

describe('ONNX import errors', () => {
  const input = { name: 'x', dims: ['N', 3, 8, 8] } as const;
  const weight = floats('conv.weight', [2, 3, 1, 1], [1, 0, 0, 0, 1, 0]);
  const importSpec = (spec: Omit<ModelSpec, 'input'>) => () => importOnnx(modelBytes({ input, ...spec }), { source: 'bad.onnx' });

  it('names the file when it is truncated', () => {
    const bytes = modelBytes({ input, outputs: ['y'], initializers: [weight], nodes: [node('Conv', ['x', 'conv.weight'], 'y')] });
    expect(() => importOnnx(bytes.subarray(0, bytes.length - 20), { source: 'cut.onnx' })).toThrow(
      /^cut\.onnx: not a readable ONNX model .*truncated/,
    );
  });

  it('names the node and op of an unsupported op', () => {
    const spec = { outputs: ['y'], nodes: [node('Softmax', ['x'], 'y', { axis: 1 })] };
    expect(importSpec(spec)).toThrow(
      "bad.onnx: node '/y/Softmax' (Softmax): op 'Softmax' is not supported; supported: Conv, BatchNormalization",
    );
  });

  it('names the node, attribute and expected value of an unsupported attribute value or an unknown attribute', () => {
    const reflect = {
      outputs: ['y'],
      initializers: [int64s('pads', [0, 0, 1, 1, 0, 0, 1, 1])],
      nodes: [node('Pad', ['x', 'pads'], 'y', { mode: 'reflect' })],
    };
    expect(importSpec(reflect)).toThrow("bad.onnx: node '/y/Pad' (Pad): mode 'reflect' is not supported; expected 'constant'");
    const ceil = { outputs: ['y'], nodes: [node('MaxPool', ['x'], 'y', { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 })] };
    expect(importSpec(ceil)).toThrow("bad.onnx: node '/y/MaxPool' (MaxPool): ceil_mode=1 changes the output size here");
    const unknown = { outputs: ['y'], nodes: [node('Relu', ['x'], 'y', { slope: 2 })] };
    expect(importSpec(unknown)).toThrow("bad.onnx: node '/y/Relu' (Relu): attribute 'slope' is not supported (it takes none)");
    const clip = { outputs: ['y'], nodes: [node('Clip', ['x'], 'y', { min: { float: -1 }, max: { float: 1 } })] };
    expect(importSpec(clip)).toThrow("node '/y/Clip' (Clip): Clip(min=-1, max=1) is not supported");
  });

  it('names the node and value of a missing initializer', () => {
    const spec = { outputs: ['y'], nodes: [node('Conv', ['x', 'conv.weight'], 'y')] };
    expect(importSpec(spec)).toThrow(
      "bad.onnx: node '/y/Conv' (Conv): input 'conv.weight' is not defined: no initializer, graph input or earlier node produces it",
    );
  });

  it('refuses values that fix or slice the batch, and weights computed from the input', () => {
    const fixed = { outputs: ['y'], initializers: [int64s('target', [1, -1])], nodes: [node('Reshape', ['x', 'target'], 'y')] };
    expect(importSpec(fixed)).toThrow("node '/y/Reshape' (Reshape): target shape [1, -1] fixes the batch dimension to 1");
    const batchSlice = {
      outputs: ['y'],
      initializers: [int64s('starts', [1]), int64s('ends', [INT64_MAX]), int64s('axes', [0])],
      nodes: [node('Slice', ['x', 'starts', 'ends', 'axes'], 'y')],
    };
    expect(importSpec(batchSlice)).toThrow("node '/y/Slice' (Slice): slicing the batch axis is not supported");
    const dynamicWeight = { outputs: ['y'], nodes: [node('Conv', ['x', 'x'], 'y')] };
    expect(importSpec(dynamicWeight)).toThrow(
      "node '/y/Conv' (Conv): weight W 'x' is computed from the network input; it must be a constant",
    );
    const dataTranspose = { outputs: ['y'], nodes: [node('Transpose', ['x'], 'y', { perm: [0, 2, 3, 1] })] };
    expect(importSpec(dataTranspose)).toThrow(
      "node '/y/Transpose' (Transpose): input 'x' is computed from the network input; Transpose is folded only over constants",
    );
  });

  it('asks for static sizes when the input has symbolic spatial dimensions', () => {
    const bytes = modelBytes({ input: { name: 'x', dims: ['N', 3, 'H', 'W'] }, outputs: ['y'], nodes: [node('Relu', ['x'], 'y')] });
    expect(() => importOnnx(bytes)).toThrow("graph input 'x' has symbolic size 'H' on axis 2; pass options.inputShapes");
    expect(importOnnx(bytes, { inputShapes: { x: [-1, 3, 16, 16] } }).inputs).toEqual([{ name: 'x', shape: [-1, 3, 16, 16] }]);
  });
});
