import type { onnx } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { type ConstTensor, constTensor } from './constant.js';

const { AttributeType } = onnxProto.onnx.AttributeProto;
const { DataType, DataLocation } = onnxProto.onnx.TensorProto;

/** protobufjs decodes int64 fields as Long objects when the `long` package is present, else as numbers. */
type Int64 = number | { toNumber(): number };

export function toNumber(value: Int64 | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

interface ElementType {
  readonly name: string;
  readonly kind: ConstTensor['kind'];
  readonly bytes: number;
  readRaw(view: DataView, offset: number): number;
  /** The typed field ONNX stores this type in when raw_data is empty. */
  typedField(tensor: onnx.ITensorProto): readonly Int64[] | null | undefined;
}

const ELEMENT_TYPES: ReadonlyMap<number, ElementType> = new Map<number, ElementType>([
  [DataType.FLOAT, { name: 'float32', kind: 'float', bytes: 4, readRaw: (v, o) => v.getFloat32(o, true), typedField: (t) => t.floatData }],
  [
    DataType.DOUBLE,
    { name: 'float64', kind: 'float', bytes: 8, readRaw: (v, o) => v.getFloat64(o, true), typedField: (t) => t.doubleData },
  ],
  [
    DataType.INT64,
    { name: 'int64', kind: 'int', bytes: 8, readRaw: (v, o) => Number(v.getBigInt64(o, true)), typedField: (t) => t.int64Data },
  ],
  [
    DataType.UINT64,
    { name: 'uint64', kind: 'int', bytes: 8, readRaw: (v, o) => Number(v.getBigUint64(o, true)), typedField: (t) => t.uint64Data },
  ],
  [DataType.INT32, { name: 'int32', kind: 'int', bytes: 4, readRaw: (v, o) => v.getInt32(o, true), typedField: (t) => t.int32Data }],
  [DataType.UINT32, { name: 'uint32', kind: 'int', bytes: 4, readRaw: (v, o) => v.getUint32(o, true), typedField: (t) => t.uint64Data }],
  [DataType.INT16, { name: 'int16', kind: 'int', bytes: 2, readRaw: (v, o) => v.getInt16(o, true), typedField: (t) => t.int32Data }],
  [DataType.UINT16, { name: 'uint16', kind: 'int', bytes: 2, readRaw: (v, o) => v.getUint16(o, true), typedField: (t) => t.int32Data }],
  [DataType.INT8, { name: 'int8', kind: 'int', bytes: 1, readRaw: (v, o) => v.getInt8(o), typedField: (t) => t.int32Data }],
  [DataType.UINT8, { name: 'uint8', kind: 'int', bytes: 1, readRaw: (v, o) => v.getUint8(o), typedField: (t) => t.int32Data }],
  [DataType.BOOL, { name: 'bool', kind: 'int', bytes: 1, readRaw: (v, o) => v.getUint8(o), typedField: (t) => t.int32Data }],
]);

function dataTypeName(dataType: number): string {
  return ELEMENT_TYPES.get(dataType)?.name ?? String(DataType[dataType] ?? dataType);
}

/** Whether tensors of this ONNX data type hold floating-point values gradfeat can import. */
export function isFloatType(dataType: number): boolean {
  return ELEMENT_TYPES.get(dataType)?.kind === 'float';
}

/** The ONNX element type `Cast(to=…)` names, as a tensor kind. */
export function kindOfDataType(dataType: number, what: string): ConstTensor['kind'] {
  const type = ELEMENT_TYPES.get(dataType);
  if (!type) throw new Error(`${what}: data type ${dataTypeName(dataType)} is not supported`);
  return type.kind;
}

/** Decodes a TensorProto (raw little-endian bytes or the typed field); `what` names it in errors. */
export function decodeTensor(tensor: onnx.ITensorProto, what: string): ConstTensor {
  if (tensor.dataLocation === DataLocation.EXTERNAL) {
    throw new Error(`${what} is stored in an external data file, which gradfeat does not read; save the model with all tensors inside it`);
  }
  const dataType = tensor.dataType ?? DataType.UNDEFINED;
  const type = ELEMENT_TYPES.get(dataType);
  if (!type) {
    const supported = [...ELEMENT_TYPES.values()].map((t) => t.name).join(', ');
    throw new Error(`${what} has data type ${dataTypeName(dataType)}; supported: ${supported}`);
  }
  const shape = (tensor.dims ?? []).map(toNumber);
  const count = shape.reduce((a, b) => a * b, 1);
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    if (raw.length !== count * type.bytes) {
      throw new Error(
        `${what}: raw_data has ${raw.length} bytes but ${type.name} of shape [${shape.join(', ')}] needs ${count * type.bytes}`,
      );
    }
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const values = type.kind === 'float' && type.bytes === 4 ? new Float32Array(count) : new Float64Array(count);
    for (let i = 0; i < count; i++) values[i] = type.readRaw(view, i * type.bytes);
    return { kind: type.kind, shape, data: values };
  }
  const typed = type.typedField(tensor) ?? [];
  if (typed.length !== count) {
    throw new Error(`${what}: holds ${typed.length} ${type.name} values but shape [${shape.join(', ')}] needs ${count}`);
  }
  const values = typed.map(toNumber);
  return type.name === 'float32' ? { kind: 'float', shape, data: Float32Array.from(values) } : constTensor(type.kind, shape, values);
}

/**
 * A node's attributes with typed, defaulted access. `where` (the node's label) prefixes errors, so a
 * wrong attribute type names the node and attribute.
 */
export class NodeAttributes {
  private readonly byName: ReadonlyMap<string, onnx.IAttributeProto>;

  constructor(
    attributes: readonly onnx.IAttributeProto[],
    private readonly where: string,
  ) {
    this.byName = new Map(attributes.map((a) => [a.name ?? '', a]));
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Without a fallback the attribute is required. */
  int(name: string, fallback?: number): number {
    const attribute = this.typed(name, AttributeType.INT);
    return this.valueOr(name, attribute && toNumber(attribute.i), fallback);
  }

  ints(name: string): number[] | undefined {
    return this.typed(name, AttributeType.INTS)?.ints?.map(toNumber);
  }

  /** Without a fallback the attribute is required. */
  float(name: string, fallback?: number): number {
    const attribute = this.typed(name, AttributeType.FLOAT);
    return this.valueOr(name, attribute && (attribute.f ?? 0), fallback);
  }

  floats(name: string): number[] | undefined {
    return this.typed(name, AttributeType.FLOATS)?.floats ?? undefined;
  }

  string(name: string, fallback: string): string {
    const attribute = this.typed(name, AttributeType.STRING);
    return attribute ? new TextDecoder().decode(attribute.s ?? new Uint8Array()) : fallback;
  }

  tensor(name: string): ConstTensor | undefined {
    const attribute = this.typed(name, AttributeType.TENSOR);
    return attribute?.t ? decodeTensor(attribute.t, `${this.where}: attribute '${name}'`) : undefined;
  }

  private valueOr(name: string, value: number | undefined, fallback: number | undefined): number {
    if (value !== undefined) return value;
    if (fallback === undefined) throw new Error(`${this.where}: needs attribute '${name}'`);
    return fallback;
  }

  private typed(name: string, type: number): onnx.IAttributeProto | undefined {
    const attribute = this.byName.get(name);
    // Files from before ONNX recorded attribute types leave it UNDEFINED; the value fields still tell.
    if (attribute && attribute.type !== AttributeType.UNDEFINED && attribute.type !== type) {
      throw new Error(`${this.where}: attribute '${name}' is ${AttributeType[attribute.type ?? 0]}; expected ${AttributeType[type]}`);
    }
    return attribute;
  }
}

export interface OnnxNode {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** Value names; '' marks an omitted optional input or output. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: NodeAttributes;
  /** How errors name the node: `node '<name>' (<op>)`, by its first output when it has no name. */
  readonly label: string;
}

export interface OnnxGraphInput {
  readonly name: string;
  readonly elemType: number;
  /** Static sizes as numbers; symbolic or unknown ones as their dim_param (or '?'). */
  readonly dims: readonly (number | string)[];
}

export interface OnnxModel {
  readonly inputs: readonly OnnxGraphInput[];
  readonly outputs: readonly string[];
  readonly initializers: ReadonlyMap<string, onnx.ITensorProto>;
  readonly nodes: readonly OnnxNode[];
  readonly metadataProps: ReadonlyMap<string, string>;
}

/** Parses an ONNX file's bytes, with errors a user can act on for files that are not ONNX models. */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  let model: onnx.ModelProto;
  try {
    model = onnxProto.onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new Error(`not a readable ONNX model (${(error as Error).message}); the file may be truncated or not ONNX`, { cause: error });
  }
  const graph = model.graph;
  if (!graph || (graph.node ?? []).length === 0)
    throw new Error('the file holds no ONNX graph (no nodes); it may be truncated or not ONNX');
  const nodes = (graph.node ?? []).map((node): OnnxNode => {
    const name = node.name ?? '';
    const opType = node.opType ?? '';
    const outputs = node.output ?? [];
    const label = name ? `node '${name}' (${opType})` : `node producing '${outputs[0] ?? '?'}' (${opType})`;
    return {
      name,
      opType,
      domain: node.domain ?? '',
      inputs: node.input ?? [],
      outputs,
      attributes: new NodeAttributes(node.attribute ?? [], label),
      label,
    };
  });
  const inputs = (graph.input ?? []).map((input): OnnxGraphInput => {
    const tensorType = input.type?.tensorType;
    return {
      name: input.name ?? '',
      elemType: tensorType?.elemType ?? DataType.UNDEFINED,
      dims: (tensorType?.shape?.dim ?? []).map((d) =>
        d.dimValue !== null && d.dimValue !== undefined ? toNumber(d.dimValue) : d.dimParam || '?',
      ),
    };
  });
  return {
    inputs,
    outputs: (graph.output ?? []).map((o) => o.name ?? ''),
    initializers: new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t])),
    nodes,
    metadataProps: new Map((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
  };
}
