import { readFileSync } from 'node:fs';
import {
  type Backend,
  createReferenceBackend,
  forwardProgram,
  type Graph,
  type HostTensor,
  INPUT,
  inferShapes,
  OUTPUT,
  parameterCount,
  relativeError,
  runProgramOnce,
} from '@gradfeat/core';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { beforeAll, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { createOnnxBackend, importOnnx } from '../src/index.js';

const MODEL_DIR = ['models', 'resnet20-cifar10'];
const FILES = { kept: 'resnet20.onnx', folded: 'resnet20.folded.onnx' } as const;
const CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
/** Float32 logits of the same network computed two ways differ by rounding only. */
const TOLERANCE = 1e-4;

/** Records [first, first + count) of the official CIFAR-10 binary, as x/255 normalised by MEAN/STD, NCHW. */
function cifarImages(bytes: Uint8Array, first: number, count: number): HostTensor {
  const plane = 32 * 32;
  const data = new Float32Array(count * 3 * plane);
  for (let n = 0; n < count; n++) {
    const pixels = bytes.subarray((first + n) * CIFAR_RECORD_BYTES + 1, (first + n + 1) * CIFAR_RECORD_BYTES);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < plane; i++) data[(n * 3 + c) * plane + i] = (pixels[c * plane + i] / 255 - MEAN[c]) / STD[c];
    }
  }
  return { shape: [count, 3, 32, 32], data };
}

async function ortLogits(session: ort.InferenceSession, images: HostTensor): Promise<Float32Array> {
  const result = await session.run({ input: new ort.Tensor('float32', images.data, [...images.shape]) });
  return result.logits.data as Float32Array;
}

async function ourLogits(backend: Backend, graph: Graph, images: HostTensor): Promise<Float32Array> {
  const outputs = await runProgramOnce(backend, forwardProgram(graph), { [INPUT]: images }, 'resnet20-logits');
  return outputs[OUTPUT].data;
}

function argmaxRows(logits: ArrayLike<number>, classes: number): number[] {
  return Array.from({ length: logits.length / classes }, (_, row) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[row * classes + c] > logits[row * classes + best]) best = c;
    return best;
  });
}

/** Elements of the file's float initializers, read with onnx-proto alone: what the importer must carry over as parameters. */
function floatInitializerElements(path: string): number {
  const model = onnxProto.onnx.ModelProto.decode(readFileSync(path));
  return (model.graph?.initializer ?? [])
    .filter((t) => t.dataType === onnxProto.onnx.TensorProto.DataType.FLOAT)
    .reduce((total, t) => total + (t.dims ?? []).reduce<number>((n, d) => n * Number(d), 1), 0);
}

describeWithShared('ONNX import of the shared ResNet-20 (PyTorch 1.13 export)', () => {
  const path = (file: string) => sharedPath(...MODEL_DIR, file);
  let graphs: Record<keyof typeof FILES, Graph>;
  let records: Uint8Array;

  beforeAll(() => {
    graphs = { kept: importOnnx(path(FILES.kept)), folded: importOnnx(path(FILES.folded)) };
    records = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
  });

  it('imports both files into valid graphs with the input, output and every float initializer', () => {
    for (const key of ['kept', 'folded'] as const) {
      const graph = graphs[key];
      expect(() => inferShapes(graph)).not.toThrow();
      expect(graph.inputs).toEqual([{ name: 'input', shape: [-1, 3, 32, 32] }]);
      expect(graph.outputs).toEqual(['logits']);
      expect(inferShapes(graph).get('logits')).toEqual([-1, 10]);
      expect(parameterCount(graph)).toBe(floatInitializerElements(path(FILES[key])));
      expect(graph.metadata).toEqual({ source: path(FILES[key]) });
    }
    expect(graphs.kept.nodes.filter((n) => n.op === 'BatchNorm')).toHaveLength(19);
    expect(graphs.folded.nodes.filter((n) => n.op === 'BatchNorm')).toHaveLength(0);
  });

  it('names residual-block outputs after their PyTorch modules, in both files', () => {
    const blocks = ['layer1', 'layer2', 'layer3'].flatMap((stage) => [0, 1, 2].map((i) => `${stage}.${i}`));
    for (const graph of Object.values(graphs)) {
      const shapes = inferShapes(graph);
      for (const block of blocks) {
        const node = graph.nodes.find((n) => n.name === block);
        // A block's output is the ReLU after the residual Add.
        expect(node?.op, block).toBe('ReLU');
        expect(graph.nodes.find((n) => n.name === node?.inputs[0])?.op).toBe('Add');
      }
      expect(shapes.get('layer3.1')).toEqual([-1, 64, 8, 8]);
      expect(graph.nodes.find((n) => n.name === 'layer3.2.conv1')?.op).toBe('Conv2D');
      expect(graph.nodes.find((n) => n.name === 'logits')?.params).toEqual({ weight: 'linear.weight', bias: 'linear.bias' });
    }
  });

  it('folds the option-A shortcut into strided slices and a zero channel pad of planes/4 per side', () => {
    for (const graph of Object.values(graphs)) {
      for (const [block, inChannels, size] of [
        ['layer2.0', 16, 32],
        ['layer3.0', 32, 16],
      ] as const) {
        const pad = graph.nodes.find((n) => n.name === `${block}.shortcut`);
        expect(pad?.op).toBe('Pad');
        // F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)) with planes = 2 · inChannels.
        expect(pad?.attrs).toEqual({ pads: [inChannels / 2, 0, 0, inChannels / 2, 0, 0] });
        const slices = graph.nodes.filter((n) => n.name.startsWith(`${block}.shortcut/Slice`));
        expect(slices.map((n) => n.attrs)).toEqual([
          { begins: [0, 0, 0], ends: [inChannels, size, size], steps: [1, 2, 1] },
          { begins: [0, 0, 0], ends: [inChannels, size / 2, size], steps: [1, 1, 2] },
        ]);
      }
    }
  });

  it('gives ONNX Runtime’s logits on the first 64 records on the float64 reference backend, with BN kept and folded', async () => {
    const images = cifarImages(records, 0, 64);
    const reference = createReferenceBackend();
    const logits: Partial<Record<keyof typeof FILES, Float32Array>> = {};
    for (const key of ['kept', 'folded'] as const) {
      const session = await ort.InferenceSession.create(path(FILES[key]));
      const expected = await ortLogits(session, images);
      await session.release();
      logits[key] = await ourLogits(reference, graphs[key], images);
      const error = relativeError(logits[key], expected);
      console.info(
        `ResNet-20 ${FILES[key]} vs ONNX Runtime (64 records, reference backend): max abs ${error.absolute.toExponential(2)}, rel ${error.relative.toExponential(2)}`,
      );
      expect(error.relative).toBeLessThanOrEqual(TOLERANCE);
    }
    const between = relativeError(logits.folded as Float32Array, logits.kept as Float32Array);
    console.info(`ResNet-20 BN folded vs kept (64 records): rel ${between.relative.toExponential(2)}`);
    expect(between.relative).toBeLessThanOrEqual(TOLERANCE);
  });

  it('agrees with ONNX Runtime on the top-1 class of all 4,000 records on the ONNX Runtime backend', async () => {
    const backend = await createOnnxBackend({ intraOpNumThreads: 1 });
    const count = records.length / CIFAR_RECORD_BYTES;
    expect(count).toBe(4000);
    for (const key of ['kept', 'folded'] as const) {
      const session = await ort.InferenceSession.create(path(FILES[key]), { intraOpNumThreads: 1 });
      const compiled = await backend.compile(forwardProgram(graphs[key]), { name: `resnet20-${key}` });
      let agreeing = 0;
      let worst = 0;
      for (let first = 0; first < count; first += 500) {
        const images = cifarImages(records, first, Math.min(500, count - first));
        const expected = await ortLogits(session, images);
        const ours = (await compiled.run({ [INPUT]: images }))[OUTPUT].data;
        worst = Math.max(worst, relativeError(ours, expected).relative);
        const expectedClasses = argmaxRows(expected, 10);
        agreeing += argmaxRows(ours, 10).filter((c, i) => c === expectedClasses[i]).length;
      }
      compiled.dispose();
      await session.release();
      console.info(
        `ResNet-20 ${FILES[key]} on ${backend.name}: top-1 agreement ${agreeing}/${count}, worst batch rel error ${worst.toExponential(2)}`,
      );
      expect(agreeing).toBe(count);
      expect(worst).toBeLessThanOrEqual(TOLERANCE);
    }
    await backend.dispose?.();
  });

  it('reports a truncated file with its name instead of importing part of it', () => {
    const bytes = readFileSync(path(FILES.kept));
    for (const length of [100, Math.floor(bytes.length * 0.6)]) {
      expect(() => importOnnx(bytes.subarray(0, length), { source: 'resnet20-truncated.onnx' })).toThrow(
        /^resnet20-truncated\.onnx: .*(truncated|not a readable ONNX model)/,
      );
    }
  });
});
