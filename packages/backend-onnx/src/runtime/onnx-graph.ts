import { type HostTensor, hostTensor } from '@gradfeat/core/engine';
import { fuseIntoConvs } from './conv-fusions.js';
import {
  type AttributeProto,
  encodeModel,
  floatTensorProto,
  floatValueInfo,
  int64TensorProto,
  type ModelContents,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

/** Options of one emitted node. */
export interface NodeOptions {
  readonly attributes?: readonly AttributeProto[];
  /** Operator domain; the default ONNX domain when absent. */
  readonly domain?: string;
}

/**
 * The bookkeeping of an ONNX graph being built: unique value names, nodes in emission order,
 * initializers (deduplicated by content where the builder asks), inputs and outputs, and which values
 * are computed from initializers alone (ONNX Runtime folds those into constants at load time).
 */
export class OnnxGraph {
  readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly graphInputs: ValueInfoProto[] = [];
  private readonly graphOutputs: ValueInfoProto[] = [];
  private readonly usedNames = new Set<string>();
  private readonly constantNames = new Set<string>();
  private readonly derivedConstants = new Map<string, string>();
  /** Float scalar initializers by name, with their values. */
  private readonly scalarValues = new Map<string, number>();
  /** Outputs of Adds whose operands have one shape, which may become a conv's Sum (see fuseIntoConvs). */
  private readonly sameShapeAdds = new Set<string>();
  /** Output of a Reshape node → its input: a reshape of a reshape reads the original. */
  private readonly reshapeSources = new Map<string, string>();
  private nameCounter = 0;

  addInput(name: string, shape: readonly number[]): void {
    if (this.usedNames.has(name)) throw new Error(`graph input '${name}' is declared twice`);
    this.usedNames.add(name);
    this.graphInputs.push(floatValueInfo(name, shape));
  }

  /** Makes `value` a graph output; returns the ONNX name, which is `name` unless that is taken. */
  addOutput(name: string, value: string, shape: readonly number[]): string {
    let outputName = name;
    for (let suffix = 1; this.usedNames.has(outputName); suffix++) outputName = `${name}_output${suffix > 1 ? suffix : ''}`;
    this.usedNames.add(outputName);
    this.nodes.push({ opType: 'Identity', name: outputName, input: [value], output: [outputName] });
    this.graphOutputs.push(floatValueInfo(outputName, shape));
    return outputName;
  }

  freshName(base: string): string {
    let name: string;
    do name = `${base}_${this.nameCounter++}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  /** Emits a node; returns the name of its (first) output. */
  node(opType: string, inputs: readonly string[], options: NodeOptions = {}): string {
    return this.nodeOutputs(opType, inputs, 1, options)[0];
  }

  nodeOutputs(opType: string, inputs: readonly string[], outputCount: number, options: NodeOptions = {}): string[] {
    if (opType === 'Reshape' && !options.domain) inputs = [this.reshapeSources.get(inputs[0]) ?? inputs[0], ...inputs.slice(1)];
    const outputs = Array.from({ length: outputCount }, () => this.freshName(opType.toLowerCase()));
    if (opType === 'Reshape' && !options.domain) this.reshapeSources.set(outputs[0], inputs[0]);
    // Optional inputs are written as ''; a node whose real inputs are all constants is constant too.
    if (inputs.every((input) => input === '' || this.constantNames.has(input)))
      for (const output of outputs) this.constantNames.add(output);
    this.nodes.push({
      opType,
      domain: options.domain,
      name: outputs[0],
      input: [...inputs],
      output: outputs,
      attribute: [...(options.attributes ?? [])],
    });
    return outputs;
  }

  /** Records that the Add writing `output` adds two values of one shape (no broadcasting). */
  markSameShapeAdd(output: string): void {
    this.sameShapeAdds.add(output);
  }

  isConstant(name: string): boolean {
    return this.constantNames.has(name);
  }

  initializer(proto: TensorProto): string {
    this.initializers.push(proto);
    this.constantNames.add(proto.name as string);
    return proto.name as string;
  }

  /** A constant the builder makes itself (shapes, axes, pooling divisors): one initializer per distinct key. */
  derivedConstant(key: string, make: (name: string) => TensorProto): string {
    let name = this.derivedConstants.get(key);
    if (name === undefined) {
      name = this.initializer(make(this.freshName('const')));
      this.derivedConstants.set(key, name);
    }
    return name;
  }

  int64s(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.derivedConstant(`int64 [${dims}] ${values}`, (name) => int64TensorProto(name, values, dims));
  }

  floatScalar(value: number): string {
    const name = this.derivedConstant(`float ${Object.is(value, -0) ? '-0' : value}`, (name) =>
      floatTensorProto(name, hostTensor([], [value])),
    );
    this.scalarValues.set(name, value);
    return name;
  }

  /** The value of a scalar made by `floatScalar`, by its name. */
  scalarValue(name: string): number | undefined {
    return this.scalarValues.get(name);
  }

  floatConstant(key: string, make: () => HostTensor): string {
    return this.derivedConstant(`float tensor ${key}`, (name) => floatTensorProto(name, make()));
  }

  /** The model, without the nodes and initializers no output depends on. */
  encode(model: Pick<ModelContents, 'graphName' | 'docString' | 'metadata'>): Uint8Array {
    const needed = new Set(this.graphOutputs.map((output) => output.name as string));
    const nodes: NodeProto[] = [];
    for (let index = this.nodes.length - 1; index >= 0; index--) {
      const node = this.nodes[index];
      if (!(node.output ?? []).some((name) => needed.has(name))) continue;
      nodes.push(node);
      for (const input of node.input ?? []) needed.add(input);
    }
    nodes.reverse();
    const outputs = new Set(this.graphOutputs.map((output) => output.name as string));
    const fused = fuseIntoConvs(nodes, { outputs, scalarValue: (name) => this.scalarValue(name), sameShapeAdds: this.sameShapeAdds });
    const domains = new Set(fused.flatMap((node) => (node.domain ? [node.domain] : [])));
    return encodeModel({
      ...model,
      nodes: fused,
      initializers: this.initializers.filter((tensor) => needed.has(tensor.name as string)),
      inputs: this.graphInputs,
      outputs: this.graphOutputs,
      extraDomains: [...domains],
    });
  }
}
