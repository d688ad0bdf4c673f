import type { HostTensor } from '../tensor.js';

/**
 * The network IR: a DAG of named single-output nodes in topological order. Tensors are NCHW;
 * shapes carry the batch dimension as -1. Every node's output value is named after the node.
 */
export type Shape = readonly number[];
/** The batch dimension in a shape: any size. */
export const BATCH = -1;

/** Explicit spatial padding [top, left, bottom, right]; TF "same" padding is resolved to this at import. */
export type Pads4 = readonly [number, number, number, number];
/** [height, width] or [y, x]. */
export type Pair = readonly [number, number];

/** Attributes of a Conv2D node. */
export interface Conv2DAttrs {
  readonly strides: Pair;
  readonly pads: Pads4;
  readonly dilations: Pair;
  readonly groups: number;
}
/** Attributes of a MaxPool or AvgPool node. */
export interface PoolAttrs {
  readonly kernel: Pair;
  readonly strides: Pair;
  readonly pads: Pads4;
  /** AvgPool only: whether padded zeros count in the divisor (ONNX count_include_pad, TF "same": false). */
  readonly countIncludePad?: boolean;
}
/** Attributes of a BatchNorm node. */
export interface BatchNormAttrs {
  readonly epsilon: number;
}
/** Attributes of a LeakyReLU node. */
export interface LeakyReluAttrs {
  readonly alpha: number;
}
/** Attributes of a Reshape node. */
export interface ReshapeAttrs {
  /** Per-sample target shape (without the batch dimension); one entry may be -1. */
  readonly shape: readonly number[];
}
/** Attributes of a Pad node. */
export interface PadAttrs {
  /** Zero padding per non-batch axis: [begin_1..begin_r, end_1..end_r] for axes 1..r. */
  readonly pads: readonly number[];
}
/** Attributes of a Slice node. */
export interface SliceAttrs {
  /** Per non-batch axis (axes 1..r) begin, end (exclusive) and positive step, all resolved. */
  readonly begins: readonly number[];
  readonly ends: readonly number[];
  readonly steps: readonly number[];
}
/** Attributes of a Concat node. */
export interface ConcatAttrs {
  readonly axis: number;
}
/** The attributes of an op that has none. */
export type NoAttrs = Readonly<Record<string, never>>;

/** Op type → its attributes. Adding an op: add it here and give it rules in `ops/`. */
export interface OpAttrs {
  Conv2D: Conv2DAttrs;
  Dense: NoAttrs;
  BatchNorm: BatchNormAttrs;
  ReLU: NoAttrs;
  ReLU6: NoAttrs;
  LeakyReLU: LeakyReluAttrs;
  MaxPool: PoolAttrs;
  AvgPool: PoolAttrs;
  GlobalAvgPool: NoAttrs;
  Add: NoAttrs;
  Flatten: NoAttrs;
  Reshape: ReshapeAttrs;
  Pad: PadAttrs;
  Slice: SliceAttrs;
  Concat: ConcatAttrs;
  Identity: NoAttrs;
}
/** The name of an op of the IR. */
export type OpType = keyof OpAttrs;

/** One operation of a graph; its output value has the node's name. */
export interface Node<O extends OpType = OpType> {
  readonly name: string;
  readonly op: O;
  /** Names of input values: graph inputs or other nodes. */
  readonly inputs: readonly string[];
  readonly attrs: OpAttrs[O];
  /** Parameter role (weight, bias, scale, mean, variance) → key in `Graph.params`. */
  readonly params: Readonly<Record<string, string>>;
}

/** A graph input's name and shape. */
export interface ValueInfo {
  readonly name: string;
  readonly shape: Shape;
}

/** What the model expects of its input pixels, when the source file says so. */
export interface Preprocessing {
  /** Input is (pixel / 255 − mean) / std per RGB channel … */
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
  /** … or pixel × scale + offset (e.g. x/127.5 − 1). */
  readonly scale?: number;
  readonly offset?: number;
  /** Spatial size [H, W] the network was trained at. */
  readonly size?: Pair;
  /** Layout of the original model's input; gradfeat's IR is always NCHW. */
  readonly sourceLayout?: 'NCHW' | 'NHWC';
}

/** What a model file says about itself beside the network. */
export interface ModelMetadata {
  readonly source?: string;
  readonly preprocessing?: Preprocessing;
  readonly classNames?: readonly string[];
  /** What an importer changed or assumed (e.g. "final softmax dropped: outputs are logits"). */
  readonly notes?: readonly string[];
}

/** gradfeat's network IR: a DAG of named single-output nodes over NCHW values, with its parameters. */
export interface Graph {
  readonly inputs: readonly ValueInfo[];
  readonly nodes: readonly Node[];
  readonly outputs: readonly string[];
  readonly params: ReadonlyMap<string, HostTensor>;
  readonly metadata?: ModelMetadata;
}

/** The node named `name`; the error lists some names when there is none. */
export function nodeByName(graph: Graph, name: string): Node {
  const node = graph.nodes.find((n) => n.name === name);
  if (!node) {
    const names = graph.nodes.map((n) => n.name);
    const hint = names.length > 12 ? `${names.slice(0, 12).join(', ')}, …` : names.join(', ');
    throw new Error(`no node named '${name}' in the network (nodes: ${hint})`);
  }
  return node;
}

/** The parameter tensor stored under `key`; an error when there is none. */
export function param(graph: Graph, key: string): HostTensor {
  const value = graph.params.get(key);
  if (!value) throw new Error(`parameter '${key}' is referenced but missing from the network`);
  return value;
}

/** The number of values in the graph's parameters. */
export function parameterCount(graph: Graph): number {
  let total = 0;
  for (const t of graph.params.values()) total += t.data.length;
  return total;
}
