import { NCHWC_DOMAIN } from './blocked-layout.js';
import { attribute, type NodeProto } from './proto.js';

/** What fusing needs to know of the graph beyond its nodes. */
export interface FusionContext {
  /** The graph's outputs, which keep their producers as they are. */
  readonly outputs: ReadonlySet<string>;
  /** The value of a float scalar initializer, by name. */
  scalarValue(name: string): number | undefined;
  /** The outputs of Adds whose two operands have one shape (no broadcasting): only they can be a conv's Sum. */
  readonly sameShapeAdds: ReadonlySet<string>;
}

/** Folds Adds and then Clips into the NCHWc Convs whose outputs they read: `fuseConvSums`, then `fuseConvActivations`. */
export function fuseIntoConvs(nodes: readonly NodeProto[], context: FusionContext): NodeProto[] {
  return fuseConvActivations(fuseConvSums(nodes, context), context);
}

/**
 * Folds an Add of two same-shape values, one of them an NCHWc Conv's output read by nothing else, into
 * that conv's optional `Sum` input: MLAS starts the conv's accumulation from it, so the Add costs no
 * pass of its own (a linearised conv's tangent conv(ż; W̄) + conv(z; w̃), a residual block's sum). The
 * fused conv takes the Add's place in the node order, where both operands exist. A Clip after the Add
 * then folds in as the conv's activation, which MLAS applies after the sum.
 */
function fuseConvSums(nodes: readonly NodeProto[], context: FusionContext): NodeProto[] {
  const { consumers, producers } = dataflow(nodes);
  const fused = [...nodes];
  const removed = new Set<number>();
  nodes.forEach((node, index) => {
    const output = node.output?.[0] ?? '';
    if (node.opType !== 'Add' || node.domain || !context.sameShapeAdds.has(output)) return;
    const operands = node.input ?? [];
    const side = operands.findIndex((input) => {
      const convIndex = producers.get(input);
      return convIndex !== undefined && consumers.get(input) === 1 && !context.outputs.has(input) && summableConv(fused[convIndex]);
    });
    if (side < 0) return;
    const convIndex = producers.get(operands[side]) as number;
    const conv = fused[convIndex];
    const [x, w, bias = ''] = conv.input ?? [];
    fused[index] = { ...conv, input: [x, w, bias, operands[1 - side]], output: [output] };
    removed.add(convIndex);
  });
  return fused.filter((_, index) => !removed.has(index));
}

/** An NCHWc Conv with no Sum and no activation yet. */
function summableConv(node: NodeProto): boolean {
  return (
    node.opType === 'Conv' &&
    node.domain === NCHWC_DOMAIN &&
    (node.input?.length ?? 0) < 4 &&
    !node.attribute?.some((a) => a.name === 'activation')
  );
}

/** How many nodes read each value, and which node (by index) writes it. */
function dataflow(nodes: readonly NodeProto[]): { consumers: Map<string, number>; producers: Map<string, number> } {
  const consumers = new Map<string, number>();
  for (const node of nodes) for (const input of node.input ?? []) consumers.set(input, (consumers.get(input) ?? 0) + 1);
  const producers = new Map<string, number>();
  nodes.forEach((node, index) => {
    for (const output of node.output ?? []) producers.set(output, index);
  });
  return { consumers, producers };
}

/**
 * Folds a Clip (a ReLU or ReLU6) that reads an NCHWc Conv's output into the conv's `activation`, as
 * ONNX Runtime's NCHWc transformer does for the convs it converts itself (the ones traced here are
 * emitted in that domain, so it never sees them). MLAS then clips in the conv's own output pass: one
 * pass over the activation less (MobileNet's block 13: 0.15 ms of 0.2 per Clip). Only a conv output
 * read by nothing but the Clip, and not returned, is folded; the builder compares a ReLU's input
 * against its output where that gives the same mask (OnnxGraphBuilder.comparison), so that backward
 * masks do not keep the pre-activation alive. Returns the nodes with the folded Clips removed.
 */
function fuseConvActivations(nodes: readonly NodeProto[], context: FusionContext): NodeProto[] {
  const { consumers, producers } = dataflow(nodes);
  const fused = [...nodes];
  const removed = new Set<number>();
  nodes.forEach((node, index) => {
    if (node.opType !== 'Clip' || node.domain) return;
    const [input, low, high] = node.input ?? [];
    const convIndex = producers.get(input);
    if (convIndex === undefined || consumers.get(input) !== 1 || context.outputs.has(input)) return;
    const conv = fused[convIndex];
    if (conv.opType !== 'Conv' || conv.domain !== NCHWC_DOMAIN || conv.attribute?.some((a) => a.name === 'activation')) return;
    const bound = (name: string | undefined) => (name ? context.scalarValue(name) : undefined);
    const [lowValue, highValue] = [bound(low), bound(high)];
    if ((low && lowValue === undefined) || (high && highValue === undefined)) return;
    const activation =
      lowValue === 0 && highValue === undefined
        ? [attribute.string('activation', 'Relu')]
        : [attribute.string('activation', 'Clip'), attribute.floats('activation_params', [lowValue ?? -FLOAT_MAX, highValue ?? FLOAT_MAX])];
    fused[convIndex] = { ...conv, output: [...(node.output ?? [])], attribute: [...(conv.attribute ?? []), ...activation] };
    removed.add(index);
  });
  return fused.filter((_, index) => !removed.has(index));
}

/** The largest finite float32: MLAS's Clip activation takes both bounds. */
const FLOAT_MAX = 3.4028234663852886e38;
