import { type CutPoint, cutPoints } from '../transforms/cut.js';
import { foldBatchNorm } from '../transforms/fold-batchnorm.js';
import { multiplyAddsPerSample } from './cost.js';
import { type Graph, type Preprocessing, parameterCount, type Shape } from './graph.js';

/** What `summariseNetwork` (and `gradfeat info`) report. */
export interface NetworkSummary {
  readonly source?: string;
  readonly inputs: readonly { readonly name: string; readonly shape: Shape; readonly layout: 'NCHW'; readonly sourceLayout?: string }[];
  readonly nodes: number;
  readonly parameters: number;
  readonly multiplyAddsPerImage: number;
  readonly classes?: number;
  /** Valid cuts after BatchNorm folding, as gradfeat trains them, with the size of θ2 each gives. */
  readonly cutPoints: readonly CutPoint[];
  readonly preprocessing?: Preprocessing;
  readonly notes?: readonly string[];
}

/** A network's description: inputs, size, cost, classes, preprocessing and where it can be cut. */
export function summariseNetwork(graph: Graph): NetworkSummary {
  const folded = foldBatchNorm(graph);
  let points: CutPoint[] = [];
  try {
    points = cutPoints(folded);
  } catch {
    // A network without a final Dense classifier has no cut points; the rest still describes it.
  }
  const last = graph.nodes.at(-1);
  return {
    source: graph.metadata?.source,
    inputs: graph.inputs.map((input) => ({
      name: input.name,
      shape: input.shape,
      layout: 'NCHW',
      sourceLayout: graph.metadata?.preprocessing?.sourceLayout,
    })),
    nodes: graph.nodes.length,
    parameters: parameterCount(graph),
    multiplyAddsPerImage: multiplyAddsPerSample(graph),
    classes: last?.op === 'Dense' ? graph.params.get(last.params.weight)?.shape[0] : undefined,
    cutPoints: points,
    preprocessing: graph.metadata?.preprocessing,
    notes: graph.metadata?.notes,
  };
}

/** Preprocessing in one line, e.g. "mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225; 32×32". */
export function formatPreprocessing(p: Preprocessing | undefined): string {
  if (!p) return 'not stated in the file';
  return [
    p.mean && `mean ${p.mean.join(', ')}`,
    p.std && `std ${p.std.join(', ')}`,
    p.scale !== undefined && `x·${p.scale}${p.offset !== undefined ? ` + ${p.offset}` : ''}`,
    p.size && `${p.size.join('×')}`,
    p.sourceLayout && `source layout ${p.sourceLayout}`,
  ]
    .filter(Boolean)
    .join('; ');
}
