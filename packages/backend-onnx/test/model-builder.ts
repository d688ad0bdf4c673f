/** Builds ONNX model bytes for tests: nodes, initializers and one float graph input. */
import type { Rng } from '@gradfeat/core';
import onnxProto, { type onnx } from 'onnx-proto';

const { AttributeType } = onnxProto.onnx.AttributeProto;
const { DataType } = onnxProto.onnx.TensorProto;

type AttributeValue = number | readonly number[] | string | { readonly float: number | readonly number[] } | onnx.ITensorProto;

/** Integers become INT/INTS, `{ float }` FLOAT/FLOATS, strings STRING, tensors TENSOR. */
export function attribute(name: string, value: AttributeValue): onnx.IAttributeProto {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') return { name, type: AttributeType.INT, i: value };
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: [...value] };
  if ('float' in value) {
    const f = value.float;
    return typeof f === 'number' ? { name, type: AttributeType.FLOAT, f } : { name, type: AttributeType.FLOATS, floats: [...f] };
  }
  return { name, type: AttributeType.TENSOR, t: value as onnx.ITensorProto };
}

export function node(opType: string, inputs: string[], output: string, attributes: Record<string, AttributeValue> = {}): onnx.INodeProto {
  return {
    name: `/${output}/${opType}`,
    opType,
    input: inputs,
    output: [output],
    attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
  };
}

export function floats(name: string, dims: number[], values: ArrayLike<number>): onnx.ITensorProto {
  return { name, dims, dataType: DataType.FLOAT, floatData: Array.from(values) };
}

/** int64 values as strings too, so INT64_MAX survives (protobufjs parses them). */
export function int64s(name: string, values: readonly (number | string)[], dims = [values.length]): onnx.ITensorProto {
  return { name, dims, dataType: DataType.INT64, int64Data: values as number[] };
}

export function randomFloats(rng: Rng, name: string, dims: number[]): onnx.ITensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  return floats(
    name,
    dims,
    Array.from({ length: count }, () => rng.uniform() * 2 - 1),
  );
}

export interface ModelSpec {
  readonly nodes: onnx.INodeProto[];
  readonly initializers?: onnx.ITensorProto[];
  readonly input: { readonly name: string; readonly dims: readonly (number | string)[] };
  readonly outputs: readonly string[];
  readonly opset?: number;
  readonly metadata?: Record<string, string>;
}

export function modelBytes(spec: ModelSpec): Uint8Array {
  const tensorType = (dims?: readonly (number | string)[]) => ({
    tensorType: {
      elemType: DataType.FLOAT,
      shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined,
    },
  });
  return onnxProto.onnx.ModelProto.encode({
    irVersion: 7,
    opsetImport: [{ domain: '', version: spec.opset ?? 13 }],
    producerName: 'gradfeat-test',
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'test',
      node: spec.nodes,
      initializer: spec.initializers ?? [],
      input: [{ name: spec.input.name, type: tensorType(spec.input.dims) }],
      output: spec.outputs.map((name) => ({ name, type: tensorType() })),
    },
  }).finish();
}
