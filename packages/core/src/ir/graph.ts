import type { HostTensor } from '../tensor.js';

/**
 * The network IR: a DAG of named single-output nodes in topological order. Tensors are NCHW;
 * shapes carry the batch dimension as -1. Every node's output value is named after the node.
 */
export type Shape = readonly number[];
export const BATCH = -1;

/** Explicit spatial padding [top, left, bottom, right]; TF "same" padding is resolved to this at import. */
export type Pads4 = readonly [number, number, number, number];
export type Pair = readonly [number, number];

export interface Conv2DAttrs {
  readonly strides: Pair;
  readonly pads: Pads4;
  readonly dilations: Pair;
  readonly groups: number;
}
export interface PoolAttrs {
  readonly kernel: Pair;
  readonly strides: Pair;
  readonly pads: Pads4;
  /** AvgPool only: whether padded zeros count in the divisor (ONNX count_include_pad, TF "same": false). */
  readonly countIncludePad?: boolean;
}
export interface BatchNormAttrs {
  readonly epsilon: number;
}
export interface LeakyReluAttrs {
  readonly alpha: number;
}
export interface ReshapeAttrs {
  /** Per-sample target shape (without the batch dimension); one entry may be -1. */
  readonly shape: readonly number[];
}
export interface PadAttrs {
  /** Zero padding per non-batch axis: [begin_1..begin_r, end_1..end_r] for axes 1..r. */
  readonly pads: readonly number[];
}
export interface SliceAttrs {
  /** Per non-batch axis (axes 1..r) begin, end (exclusive) and positive step, all resolved. */
  readonly begins: readonly number[];
  readonly ends: readonly number[];
  readonly steps: readonly number[];
}
export interface ConcatAttrs {
  readonly axis: number;
}
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
export type OpType = keyof OpAttrs;

export interface Node<O extends OpType = OpType> {
  readonly name: string;
  readonly op: O;
  /** Names of input values: graph inputs or other nodes. */
  readonly inputs: readonly string[];
  readonly attrs: OpAttrs[O];
  /** Parameter role (weight, bias, scale, mean, variance) → key in `Graph.params`. */
  readonly params: Readonly<Record<string, string>>;
}

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

export interface ModelMetadata {
  readonly source?: string;
  readonly preprocessing?: Preprocessing;
  readonly classNames?: readonly string[];
  /** What an importer changed or assumed (e.g. "final softmax dropped: outputs are logits"). */
  readonly notes?: readonly string[];
}

export interface Graph {
  readonly inputs: readonly ValueInfo[];
  readonly nodes: readonly Node[];
  readonly outputs: readonly string[];
  readonly params: ReadonlyMap<string, HostTensor>;
  readonly metadata?: ModelMetadata;
}

export function nodeByName(graph: Graph, name: string): Node {
  const node = graph.nodes.find((n) => n.name === name);
  if (!node) {
    const names = graph.nodes.map((n) => n.name);
    const hint = names.length > 12 ? `${names.slice(0, 12).join(', ')}, …` : names.join(', ');
    throw new Error(`no node named '${name}' in the network (nodes: ${hint})`);
  }
  return node;
}

export function param(graph: Graph, key: string): HostTensor {
  const value = graph.params.get(key);
  if (!value) throw new Error(`parameter '${key}' is referenced but missing from the network`);
  return value;
}

export function parameterCount(graph: Graph): number {
  let total = 0;
  for (const t of graph.params.values()) total += t.data.length;
  return total;
}
