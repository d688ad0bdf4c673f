import type { HostTensor } from '@gradfeat/core/engine';
import onnxProto, { type onnx as Schema } from 'onnx-proto';

/** The ONNX protobuf messages (onnx-proto is CommonJS: one namespace object). */
export const { onnx } = onnxProto;
export type NodeProto = Schema.INodeProto;
export type TensorProto = Schema.ITensorProto;
export type AttributeProto = Schema.IAttributeProto;
export type ValueInfoProto = Schema.IValueInfoProto;

/**
 * The default ONNX domain's opset the traced graphs use: 17 has ScatterElements' 'add' reduction
 * (16+) and still takes ReduceMax axes as an attribute; ONNX Runtime 1.30 runs it on every EP.
 */
export const OPSET_VERSION = 17;
/** IR version 8 is what opset 17 was released with. */
export const IR_VERSION = 8;

/** Name of the symbolic batch dimension in the graphs' inputs and outputs. */
export const BATCH_DIM_PARAM = 'N';

const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

export const attribute = {
  int: (name: string, value: number): AttributeProto => ({ name, type: AttributeType.INT, i: value }),
  ints: (name: string, values: readonly number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints: [...values] }),
  float: (name: string, value: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f: value }),
  floats: (name: string, values: readonly number[]): AttributeProto => ({ name, type: AttributeType.FLOATS, floats: [...values] }),
  string: (name: string, value: string): AttributeProto => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) }),
  tensor: (name: string, value: TensorProto): AttributeProto => ({ name, type: AttributeType.TENSOR, t: value }),
};

/** ONNX stores raw tensor data little-endian, as typed arrays are on every platform Node supports. */
function rawBytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function floatTensorProto(name: string, value: HostTensor): TensorProto {
  return { name, dims: [...value.shape], dataType: DataType.FLOAT, rawData: rawBytes(value.data) };
}

export function int64TensorProto(name: string, values: readonly number[], dims: readonly number[] = [values.length]): TensorProto {
  return { name, dims: [...dims], dataType: DataType.INT64, rawData: rawBytes(BigInt64Array.from(values, (v) => BigInt(v))) };
}

/** A float tensor's type with -1 written as the symbolic batch dimension. */
export function floatValueInfo(name: string, shape: readonly number[]): ValueInfoProto {
  const dim = shape.map((d) => (d === -1 ? { dimParam: BATCH_DIM_PARAM } : { dimValue: d }));
  return { name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim } } } };
}

export const FLOAT_DATA_TYPE = DataType.FLOAT;

export interface ModelContents {
  readonly graphName: string;
  readonly nodes: readonly NodeProto[];
  readonly initializers: readonly TensorProto[];
  readonly inputs: readonly ValueInfoProto[];
  readonly outputs: readonly ValueInfoProto[];
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  /** Operator domains besides the default one that the nodes use (each at version 1). */
  readonly extraDomains?: readonly string[];
}

export function encodeModel(contents: ModelContents): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }, ...(contents.extraDomains ?? []).map((domain) => ({ domain, version: 1 }))],
    producerName: 'gradfeat',
    docString: contents.docString,
    metadataProps: Object.entries(contents.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: contents.graphName,
      node: [...contents.nodes],
      initializer: [...contents.initializers],
      input: [...contents.inputs],
      output: [...contents.outputs],
    },
  }).finish();
}
