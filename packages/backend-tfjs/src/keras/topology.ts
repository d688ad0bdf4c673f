/**
 * Reads the `modelTopology` of a TF.js layers model.json (as written by tfjs-converter from a Keras
 * HDF5 file, or by tfjs-layers' `model.save`) into one list of layers, whether the model is
 * Sequential or functional.
 */

/** One Keras layer, with the layers whose outputs it reads. */
export interface KerasLayer {
  readonly className: string;
  readonly name: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** Names of the layers whose (single) outputs this layer is called on; empty for an InputLayer. */
  readonly inbound: readonly string[];
}

export interface KerasModel {
  readonly name?: string;
  /** e.g. '2.1.4' or 'tfjs-layers 4.22.0'. */
  readonly kerasVersion?: string;
  /** Topological order; only the layers the outputs depend on. */
  readonly layers: readonly KerasLayer[];
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseTopology(modelJson: unknown, file: string): KerasModel {
  const fail = (message: string): never => {
    throw new Error(`${file}: ${message}`);
  };
  if (!isObject(modelJson) || !isObject(modelJson.modelTopology)) {
    return fail('not a TF.js model.json (no "modelTopology" object)');
  }
  const topology = modelJson.modelTopology;
  if (Array.isArray(topology.node) || modelJson.format === 'graph-model') {
    return fail(
      'this is a TF.js graph model (converted from a SavedModel or frozen graph); importKerasModel reads layers models, converted from a Keras model (tfjs-converter --input_format keras)',
    );
  }
  // tfjs-converter nests the Keras model config under "model_config"; tfjs-layers' save() does not.
  const modelConfig = isObject(topology.model_config) ? topology.model_config : topology;
  const kerasVersion = typeof topology.keras_version === 'string' ? topology.keras_version : undefined;
  const className = modelConfig.class_name;
  const config = modelConfig.config;
  if (className === 'Sequential') return { ...parseSequential(config, fail), kerasVersion };
  if (className === 'Model' || className === 'Functional') {
    if (!isObject(config)) return fail(`the ${className} config is not an object`);
    return { ...parseFunctional(config, fail), kerasVersion };
  }
  return fail(`model class '${String(className)}' is not supported; expected Sequential, Model or Functional`);
}

function parseLayer(entry: unknown, index: number, fail: (message: string) => never): Omit<KerasLayer, 'inbound'> {
  if (!isObject(entry) || typeof entry.class_name !== 'string' || !isObject(entry.config)) {
    return fail(`layer #${index} has no "class_name" and "config"`);
  }
  const name = typeof entry.name === 'string' ? entry.name : entry.config.name;
  if (typeof name !== 'string') return fail(`layer #${index} (${entry.class_name}) has no name`);
  if (entry.class_name === 'Sequential' || entry.class_name === 'Model' || entry.class_name === 'Functional') {
    return fail(`layer '${name}' is a nested ${entry.class_name} model; flatten it into one model before exporting`);
  }
  return { className: entry.class_name, name, config: entry.config };
}

/** Sequential: each layer reads the previous one; the input comes from the first layer's batch_input_shape. */
function parseSequential(config: unknown, fail: (message: string) => never): KerasModel {
  // Keras 2.1 stores the layer list itself as the config; later versions wrap it in { name, layers }.
  const entries = Array.isArray(config) ? config : isObject(config) ? config.layers : undefined;
  if (!Array.isArray(entries) || entries.length === 0) return fail('the Sequential model has no layers');
  const parsed = entries.map((entry, i) => parseLayer(entry, i, fail));
  const layers: KerasLayer[] = [];
  if (parsed[0].className !== 'InputLayer') {
    const first = parsed[0];
    const batchShape = first.config.batch_input_shape ?? first.config.batch_shape;
    if (batchShape === undefined) {
      return fail(`the first layer '${first.name}' (${first.className}) of the Sequential model declares no batch_input_shape`);
    }
    // tfjs-layers names the implicit input this way too.
    layers.push({ className: 'InputLayer', name: `${first.name}_input`, config: { batch_input_shape: batchShape }, inbound: [] });
  }
  for (const layer of parsed) {
    const previous = layers[layers.length - 1];
    layers.push({ ...layer, inbound: previous ? [previous.name] : [] });
  }
  return {
    name: isObject(config) && typeof config.name === 'string' ? config.name : undefined,
    layers,
    inputs: [layers[0].name],
    outputs: [layers[layers.length - 1].name],
  };
}

/** Functional: layers name their inputs in `inbound_nodes`; the model's ends are input_layers / output_layers. */
function parseFunctional(config: Json, fail: (message: string) => never): KerasModel {
  if (!Array.isArray(config.layers) || config.layers.length === 0) return fail('the functional model has no layers');
  const byName = new Map<string, KerasLayer>();
  for (const [index, entry] of config.layers.entries()) {
    const layer = parseLayer(entry, index, fail);
    const calls = (entry as Json).inbound_nodes;
    if (!Array.isArray(calls)) fail(`layer '${layer.name}' (${layer.className}) has no "inbound_nodes" list`);
    if (calls.length > 1) {
      fail(
        `layer '${layer.name}' (${layer.className}) is called ${calls.length} times (a shared layer); gradfeat needs one call per layer`,
      );
    }
    const inbound = calls.length === 0 ? [] : parseCall(calls[0], `layer '${layer.name}' (${layer.className})`, fail);
    if (byName.has(layer.name)) fail(`two layers are named '${layer.name}'`);
    byName.set(layer.name, { ...layer, inbound });
  }
  const inputs = parseEnds(config.input_layers, 'input_layers', fail);
  const outputs = parseEnds(config.output_layers, 'output_layers', fail);
  return {
    name: typeof config.name === 'string' ? config.name : undefined,
    layers: topologicalOrder(byName, inputs, outputs, fail),
    inputs,
    outputs,
  };
}

/** One call of a layer: [[layer, nodeIndex, tensorIndex, kwargs], …] → the layer names. */
function parseCall(call: unknown, where: string, fail: (message: string) => never): string[] {
  if (!Array.isArray(call)) {
    return fail(
      `${where}: inbound node ${JSON.stringify(call)} is not a list of [layer, node, tensor, kwargs] (Keras 3 files are not supported)`,
    );
  }
  return call.map((ref: unknown) => {
    if (!Array.isArray(ref) || typeof ref[0] !== 'string') return fail(`${where}: inbound reference ${JSON.stringify(ref)} names no layer`);
    if (ref[1] !== 0 || ref[2] !== 0) {
      return fail(`${where} reads output ${ref[2]} of call ${ref[1]} of '${ref[0]}'; only single-output layers called once are supported`);
    }
    return ref[0];
  });
}

function parseEnds(ends: unknown, field: string, fail: (message: string) => never): string[] {
  if (!Array.isArray(ends) || ends.length === 0) return fail(`the functional model has no "${field}"`);
  return parseCall(ends, `"${field}"`, fail);
}

/**
 * Depth-first from the inputs, then the outputs, so every layer comes after the layers it reads. The
 * walk keeps its own stack, so a model of any depth is ordered in linear time without recursion.
 */
function topologicalOrder(
  byName: ReadonlyMap<string, KerasLayer>,
  inputs: readonly string[],
  outputs: readonly string[],
  fail: (message: string) => never,
): KerasLayer[] {
  const order: KerasLayer[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  /** Layers being visited, each with the position of the next inbound layer to visit. */
  const stack: { layer: KerasLayer; next: number }[] = [];
  const enter = (name: string, reader: string): void => {
    const layer = byName.get(name);
    if (!layer) fail(`${reader} reads '${name}', which is not a layer of the model`);
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') fail(`layer '${name}' depends on itself (a cycle in inbound_nodes)`);
    state.set(name, 'visiting');
    stack.push({ layer, next: 0 });
  };
  for (const [start, reader] of [...inputs.map((name) => [name, '"input_layers"']), ...outputs.map((name) => [name, '"output_layers"'])]) {
    enter(start, reader);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (top.next < top.layer.inbound.length) {
        enter(top.layer.inbound[top.next++], `layer '${top.layer.name}' (${top.layer.className})`);
        continue;
      }
      stack.pop();
      state.set(top.layer.name, 'done');
      order.push(top.layer);
    }
  }
  return order;
}
