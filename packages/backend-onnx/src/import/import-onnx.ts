import { readFileSync } from 'node:fs';
import {
  BATCH,
  type Graph,
  type HostTensor,
  hostTensor,
  inferShapes,
  type ModelMetadata,
  type Node,
  type OpAttrs,
  type OpType,
  rulesFor,
  type Shape,
  type ValueInfo,
} from '@gradfeat/core/engine';
import { type ConstTensor, constTensor, sameConst } from './constant.js';
import { type BiasFreeDense, CONVERSION_RULES, type ConversionContext, type NetworkValue } from './convert.js';
import { FOLD_RULES, FoldBudget, shapeValue } from './fold.js';
import { modelMetadata } from './metadata.js';
import { readableNames } from './naming.js';
import { decodeModel, decodeTensor, isFloatType, type OnnxModel, type OnnxNode } from './proto.js';

/** How `importOnnx` reads a model. */
export interface OnnxImportOptions {
  /** Names the model in errors and metadata.source when importing bytes; a path names itself. */
  readonly source?: string;
  /** Shapes (batch as -1) for graph inputs whose non-batch sizes are symbolic in the file. */
  readonly inputShapes?: Readonly<Record<string, Shape>>;
}

/**
 * The batch sizes shape computations are folded at. The IR keeps the batch symbolic, so every constant
 * is folded once per probe: a value that comes out the same at both does not depend on the batch, and
 * one that differs names it (e.g. the N of a Reshape to [N, -1]), which conversion rules can map.
 */
const BATCH_PROBES: readonly number[] = [2, 3];

/** A constant as folded at each of BATCH_PROBES; batch-independent ones repeat the same object. */
type Probed = readonly ConstTensor[];

function batchIndependent(value: ConstTensor): Probed {
  return BATCH_PROBES.map(() => value);
}

interface EmittedNode {
  /** The ONNX value it computes; the IR name is chosen once the whole graph is known. */
  id: string;
  onnxName: string;
  readonly op: OpType;
  readonly inputs: readonly string[];
  readonly attrs: OpAttrs[OpType];
  readonly params: Record<string, ConstTensor>;
}

/**
 * Imports an ONNX model (a file path or its bytes) into gradfeat's IR: shape computations are folded
 * to constants, the remaining ops are mapped to IR ops, and the graph is validated with inferShapes.
 * Anything that cannot be mapped is an error naming the node, its op and what is missing.
 */
export function importOnnx(pathOrBytes: string | Uint8Array, options: OnnxImportOptions = {}): Graph {
  const source = typeof pathOrBytes === 'string' ? pathOrBytes : options.source;
  try {
    const bytes = typeof pathOrBytes === 'string' ? readFileSync(pathOrBytes) : pathOrBytes;
    const model = decodeModel(bytes);
    return new OnnxImporter(model, options, new FoldBudget(bytes.length)).importGraph(modelMetadata(source, model.metadataProps));
  } catch (error) {
    throw new Error(`${source ?? 'ONNX model'}: ${(error as Error).message}`, { cause: error });
  }
}

/** Prefixes an error with the node's label unless it already names the node. */
function inNode(node: OnnxNode, error: unknown): Error {
  const message = (error as Error).message;
  const named = message.startsWith(node.label) || message.startsWith(`node '${node.name || node.outputs[0]}'`);
  return new Error(named ? message : `${node.label}: ${message}`, { cause: error });
}

function checkAttributes(node: OnnxNode, understood: readonly string[]): void {
  for (const name of node.attributes.names()) {
    if (!understood.includes(name)) {
      const known = understood.length > 0 ? `understood: ${understood.join(', ')}` : 'it takes none';
      throw new Error(`attribute '${name}' is not supported (${known})`);
    }
  }
}

/** The value of a Constant node, from whichever value attribute it carries. */
function constantNodeValue(node: OnnxNode): ConstTensor {
  const attributes = node.attributes;
  checkAttributes(node, ['value', 'value_float', 'value_floats', 'value_int', 'value_ints']);
  const tensor = attributes.tensor('value');
  if (tensor) return tensor;
  if (attributes.has('value_float')) return constTensor('float', [], [attributes.float('value_float')]);
  if (attributes.has('value_int')) return constTensor('int', [], [attributes.int('value_int')]);
  const floats = attributes.floats('value_floats');
  if (floats) return constTensor('float', [floats.length], floats);
  const ints = attributes.ints('value_ints');
  if (ints) return constTensor('int', [ints.length], ints);
  throw new Error('has no value attribute');
}

class OnnxImporter {
  private readonly constants = new Map<string, Probed>();
  /** Values computed from the graph inputs, by ONNX value name (which is also their IR id). */
  private readonly values = new Map<string, NetworkValue>();
  private readonly emitted: EmittedNode[] = [];
  private readonly producers = new Map<string, EmittedNode>();
  /** How often each ONNX value is read, by nodes or as a graph output. */
  private readonly readCounts = new Map<string, number>();

  constructor(
    private readonly model: OnnxModel,
    private readonly options: OnnxImportOptions,
    private readonly budget: FoldBudget,
  ) {
    for (const name of [...model.nodes.flatMap((n) => n.inputs), ...model.outputs]) {
      if (name !== '') this.readCounts.set(name, (this.readCounts.get(name) ?? 0) + 1);
    }
  }

  importGraph(metadata: ModelMetadata): Graph {
    for (const [name, tensor] of this.model.initializers)
      this.constants.set(name, batchIndependent(decodeTensor(tensor, `initializer '${name}'`)));
    const inputs = this.graphInputs();
    for (const node of this.model.nodes) {
      try {
        this.importNode(node);
      } catch (error) {
        throw inNode(node, error);
      }
    }
    const outputs = this.model.outputs.map((name) => {
      if (this.producers.has(name)) return name;
      const what = this.constants.has(name)
        ? 'a constant'
        : this.values.has(name)
          ? 'a graph input passed through'
          : 'not produced by any node';
      throw new Error(`graph output '${name}' is ${what}; gradfeat imports outputs computed by the network`);
    });
    const nameCounts = new Map<string, number>();
    for (const node of this.model.nodes) nameCounts.set(node.name, (nameCounts.get(node.name) ?? 0) + 1);
    const names = readableNames(
      this.emitted,
      inputs.map((i) => i.name),
      outputs,
      nameCounts,
    );
    const irName = (id: string) => names.nodes.get(id) ?? id;
    const params = new Map<string, HostTensor>();
    const nodes = this.emitted.map((node): Node => {
      const keys: Record<string, string> = {};
      for (const [role, value] of Object.entries(node.params)) {
        const key = `${names.paramPrefixes.get(node.id)}.${role}`;
        keys[role] = key;
        params.set(key, hostTensor(value.shape, Float32Array.from(value.data)));
      }
      return { name: irName(node.id), op: node.op, inputs: node.inputs.map(irName), attrs: node.attrs, params: keys } as Node;
    });
    const graph: Graph = { inputs, nodes, outputs, params, metadata };
    inferShapes(graph);
    return graph;
  }

  /** Graph inputs without an initializer (older exporters list initializers as inputs too), batch as -1. */
  private graphInputs(): ValueInfo[] {
    const inputs = this.model.inputs.filter((input) => !this.model.initializers.has(input.name));
    for (const name of Object.keys(this.options.inputShapes ?? {})) {
      if (!inputs.some((i) => i.name === name)) {
        throw new Error(
          `options.inputShapes names '${name}', which is not a graph input (inputs: ${inputs.map((i) => i.name).join(', ')})`,
        );
      }
    }
    return inputs.map((input) => {
      if (!isFloatType(input.elemType)) throw new Error(`graph input '${input.name}' is not a float tensor; gradfeat imports image models`);
      const given = this.options.inputShapes?.[input.name];
      if (given && given[0] !== BATCH) throw new Error(`options.inputShapes['${input.name}'] must start with the batch as ${BATCH}`);
      const dims = given ?? input.dims;
      if (dims.length < 2) throw new Error(`graph input '${input.name}' has rank ${dims.length}; expected [batch, …]`);
      const shape = dims.map((d, axis) => {
        if (axis === 0) return BATCH;
        if (typeof d !== 'number' || d < 1) {
          throw new Error(
            `graph input '${input.name}' has symbolic size '${d}' on axis ${axis}; pass options.inputShapes { '${input.name}': [-1, …] } with static sizes`,
          );
        }
        return d;
      });
      this.values.set(input.name, { id: input.name, shape });
      return { name: input.name, shape };
    });
  }

  private importNode(node: OnnxNode): void {
    if (node.domain !== '' && node.domain !== 'ai.onnx')
      throw new Error(`domain '${node.domain}' is not supported; only standard ONNX ops are`);
    for (const input of node.inputs) {
      if (input !== '' && !this.constants.has(input) && !this.values.has(input)) {
        throw new Error(`input '${input}' is not defined: no initializer, graph input or earlier node produces it`);
      }
    }
    for (const output of node.outputs.slice(1)) {
      if (this.readCounts.has(output))
        throw new Error(`output '${output}' is read later, but gradfeat imports only the first output of ${node.opType}`);
    }
    if (node.opType === 'Constant') {
      this.setConstant(node, batchIndependent(constantNodeValue(node)));
      return;
    }
    const foldRule = FOLD_RULES[node.opType];
    const network = node.inputs.find((input) => this.values.has(input));
    if (foldRule && network === undefined) {
      checkAttributes(node, foldRule.attributes);
      this.fold(node);
      return;
    }
    if (node.opType === 'Shape' && network !== undefined) {
      checkAttributes(node, foldRule.attributes);
      const shape = this.values.get(network)?.shape ?? [];
      this.setConstant(
        node,
        BATCH_PROBES.map((batch) => shapeValue(node, [batch, ...shape.slice(1)])),
      );
      return;
    }
    const rule = CONVERSION_RULES[node.opType];
    if (!rule) {
      if (foldRule) {
        throw new Error(
          `input '${network}' is computed from the network input; ${node.opType} is folded only over constants (shape computations)`,
        );
      }
      throw new Error(
        `op '${node.opType}' is not supported; supported: ${Object.keys(CONVERSION_RULES).join(', ')}, and ${Object.keys(FOLD_RULES).join(', ')} over constants`,
      );
    }
    checkAttributes(node, rule.attributes);
    rule.convert(this.context(node, rule.emits));
  }

  private fold(node: OnnxNode): void {
    const rule = FOLD_RULES[node.opType];
    const inputs = node.inputs.map((input) => (input === '' ? undefined : this.constants.get(input)));
    // Folding at one probe suffices when no input depends on the batch (weights, for instance).
    const independent = inputs.every((probes) => probes === undefined || probes.every((p) => p === probes[0]));
    if (independent) {
      this.setConstant(
        node,
        batchIndependent(
          rule.fold(
            node,
            inputs.map((probes) => probes?.[0]),
            this.budget,
          ),
        ),
      );
      return;
    }
    this.setConstant(
      node,
      BATCH_PROBES.map((_, probe) =>
        rule.fold(
          node,
          inputs.map((probes) => probes?.[probe]),
          this.budget,
        ),
      ),
    );
  }

  private setConstant(node: OnnxNode, probes: Probed): void {
    this.constants.set(node.outputs[0], probes.every((p) => sameConst(p, probes[0])) ? batchIndependent(probes[0]) : probes);
  }

  private constantProbes(node: OnnxNode, index: number, what: string): Probed {
    const name = node.inputs[index] ?? '';
    const probes = this.constants.get(name);
    if (probes) return probes;
    if (name === '') throw new Error(`needs ${what} (input ${index})`);
    throw new Error(
      `${what} '${name}' is computed from the network input; it must be a constant (an initializer or a foldable shape computation)`,
    );
  }

  private context(node: OnnxNode, emits: readonly OpType[]): ConversionContext {
    const inputName = (index: number) => node.inputs[index] ?? '';
    const hasInput = (index: number) => inputName(index) !== '';
    const constant = (index: number, what: string) => {
      const probes = this.constantProbes(node, index, what);
      if (probes.some((p) => p !== probes[0]))
        throw new Error(`${what} '${inputName(index)}' depends on the batch size, which gradfeat keeps symbolic`);
      return probes[0];
    };
    return {
      node,
      batchProbes: BATCH_PROBES,
      hasInput,
      isConstant: (index) => this.constants.has(inputName(index)),
      value: (index) => {
        const value = this.values.get(inputName(index));
        if (value) return value;
        throw new Error(
          inputName(index) === ''
            ? `needs input ${index}`
            : `input '${inputName(index)}' is a constant; expected a value computed from the network input`,
        );
      },
      constant,
      optionalConstant: (index, what) => (hasInput(index) ? constant(index, what) : undefined),
      constantPerBatch: (index, what) => this.constantProbes(node, index, what),
      emit: (op, inputs, attrs, params = {}) => {
        // The declared mapping is what the importer coverage test reads: a rule may not go beyond it.
        if (!emits.includes(op))
          throw new Error(`the ${node.opType} rule emitted ${op}, which its 'emits' does not list (an importer bug)`);
        this.emit(node, op, inputs, attrs, params);
      },
      biasFreeDense: (index) => {
        const producer = this.producers.get(inputName(index));
        if (producer?.op !== 'Dense' || producer.params.bias || this.readCounts.get(producer.id) !== 1) return undefined;
        return { id: producer.id, outputs: producer.params.weight.shape[0] };
      },
      fuseBias: (dense, bias) => this.fuseBias(node, dense, bias),
    };
  }

  private emit<O extends OpType>(
    node: OnnxNode,
    op: O,
    inputs: readonly NetworkValue[],
    attrs: OpAttrs[O],
    params: Readonly<Record<string, ConstTensor>>,
  ): void {
    const id = node.outputs[0];
    const paramShapes = Object.fromEntries(Object.entries(params).map(([role, value]) => [role, value.shape]));
    const irNode = { name: node.name || id, op, inputs: inputs.map((v) => v.id), attrs, params: {} } as Node<O>;
    const shape = rulesFor(op, irNode.name).inferShape(
      inputs.map((v) => v.shape),
      attrs,
      paramShapes,
      irNode,
    );
    const emitted: EmittedNode = { id, onnxName: node.name, op, inputs: irNode.inputs, attrs, params: { ...params } };
    this.emitted.push(emitted);
    this.producers.set(id, emitted);
    this.values.set(id, { id, shape });
  }

  /** MatMul + Add of a constant → one Dense with bias, computing the Add's output. */
  private fuseBias(node: OnnxNode, dense: BiasFreeDense, bias: ConstTensor): void {
    const producer = this.producers.get(dense.id) as EmittedNode;
    const value = this.values.get(dense.id) as NetworkValue;
    this.producers.delete(dense.id);
    this.values.delete(dense.id);
    producer.id = node.outputs[0];
    producer.onnxName = node.name;
    producer.params.bias = bias;
    this.producers.set(producer.id, producer);
    this.values.set(producer.id, { id: producer.id, shape: value.shape });
  }
}
