/** An imported node as naming sees it: its provisional id (its ONNX output value) and ONNX node name. */
export interface NamingCandidate {
  readonly id: string;
  readonly onnxName: string;
  readonly inputs: readonly string[];
}

export interface ReadableNames {
  /** IR node name per id: readable, unique, and the ONNX output name for graph outputs. */
  readonly nodes: ReadonlyMap<string, string>;
  /** Prefix of each node's parameter keys: its readable name, e.g. 'layer3.2.conv1' → 'layer3.2.conv1.weight'. */
  readonly paramPrefixes: ReadonlyMap<string, string>;
}

/**
 * PyTorch (≥ 1.13) names nodes by module scope: '/layer3/layer3.2/conv1/Conv'. Each component is the
 * module's name from its last non-numeric atom on ('layer3.2' for the Sequential child '2'), so the
 * module's qualified name is the chain of last atoms: 'layer3.2.conv1'. Other names are not scopes.
 */
function torchScope(onnxName: string): { modules: string[]; leaf: string } | undefined {
  if (!onnxName.startsWith('/')) return undefined;
  const parts = onnxName.slice(1).split('/');
  if (parts.some((p) => p === '')) return undefined;
  const modules: string[] = [];
  for (const part of parts.slice(0, -1)) {
    const local = part.split('.').at(-1) as string;
    modules.push(modules.length === 0 ? part : `${modules.at(-1)}.${local}`);
  }
  return { modules, leaf: parts.at(-1) as string };
}

/**
 * Names users can read and type for `--cut`. A PyTorch node that is the only one whose output leaves
 * its module is named after the module, so the output of residual block 'layer3.1' is the node
 * 'layer3.1' (and a conv module's output is 'layer3.1.conv1'); other PyTorch nodes become
 * '<module>/<op>' ('layer3.1/Relu'). Other exporters' node names are kept when unique; nodes without
 * one are named by their ONNX output value. Graph outputs keep their ONNX names (e.g. 'logits').
 */
export function readableNames(
  nodes: readonly NamingCandidate[],
  graphInputs: readonly string[],
  graphOutputs: readonly string[],
  nameCounts: ReadonlyMap<string, number>,
): ReadableNames {
  const unique = (onnxName: string) => onnxName !== '' && nameCounts.get(onnxName) === 1;
  const scopes = new Map(nodes.map((n) => [n.id, unique(n.onnxName) ? torchScope(n.onnxName) : undefined]));
  const consumers = new Map<string, string[]>();
  for (const node of nodes) for (const input of node.inputs) consumers.set(input, [...(consumers.get(input) ?? []), node.id]);
  const outputSet = new Set(graphOutputs);

  // The modules each node's output leaves: read outside the module, or a graph output.
  const exits = new Map<string, string[]>();
  const exitCount = new Map<string, number>();
  for (const node of nodes) {
    const scope = scopes.get(node.id);
    if (!scope) continue;
    const left = scope.modules.filter(
      (module) => outputSet.has(node.id) || (consumers.get(node.id) ?? []).some((c) => !scopes.get(c)?.modules.includes(module)),
    );
    exits.set(node.id, left);
    for (const module of left) exitCount.set(module, (exitCount.get(module) ?? 0) + 1);
  }

  // Graph output names are reserved for the nodes computing them.
  const used = new Set([...graphInputs, ...graphOutputs]);
  const claim = (preferred: string, id: string): string => {
    const isFree = (name: string) => !used.has(name) || (name === id && outputSet.has(id));
    let name = isFree(preferred) ? preferred : id;
    for (let suffix = 2; !isFree(name); suffix++) name = `${id}_${suffix}`;
    used.add(name);
    return name;
  };
  const names = new Map<string, string>();
  const paramPrefixes = new Map<string, string>();
  for (const node of nodes) {
    const scope = scopes.get(node.id);
    let preferred = node.id;
    if (scope) {
      const module = [...(exits.get(node.id) ?? [])].reverse().find((m) => exitCount.get(m) === 1);
      preferred = module ?? [scope.modules.at(-1), scope.leaf].filter(Boolean).join('/');
    } else if (unique(node.onnxName)) {
      preferred = node.onnxName;
    }
    const readable = claim(preferred, node.id);
    paramPrefixes.set(node.id, readable);
    names.set(node.id, outputSet.has(node.id) ? node.id : readable);
  }
  return { nodes: names, paramPrefixes };
}
