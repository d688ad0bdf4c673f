import type { Graph } from '../ir/graph.js';
import { inferShapes } from '../ir/shapes.js';
import { rulesFor } from '../ops/rule.js';
import type { HostTensor } from '../tensor.js';
import { cutNetwork } from '../transforms/cut.js';
import { foldBatchNorm } from '../transforms/fold-batchnorm.js';
import { ntkParametrisation, type ParamScales, standardParametrisation } from '../transforms/reparametrise.js';

/** Coordinates of θ2: the paper's NTK scaling, or the network's own. */
export type Parametrisation = 'ntk' | 'standard';

/** A linear classifier: logits = weight · features + bias. */
export interface Classifier {
  /** [classes, features] */
  readonly weight: HostTensor;
  /** [classes] */
  readonly bias: HostTensor;
}

/** The keys of a graph's trainable parameters (weights and biases, as each op describes its parameters). */
export function trainableParams(graph: Graph): string[] {
  return graph.nodes.flatMap((node) => {
    const descriptors = rulesFor(node.op, node.name).params;
    return Object.entries(node.params).flatMap(([role, key]) => (descriptors[role]?.kind === 'buffer' ? [] : [key]));
  });
}

/** How many values θ2 trains (its weights and biases). */
export function theta2Size(model: LinearisedModel): number {
  return model.headParamKeys.reduce((total, key) => total + (model.head.params.get(key)?.data.length ?? 0), 0);
}

/** A classifier of zeros: where the linear probe starts, and the shapes a method's checkpoint must have. */
export function zeroClassifier(classes: number, features: number): Classifier {
  return {
    weight: { shape: [classes, features], data: new Float32Array(classes * features) },
    bias: { shape: [classes], data: new Float32Array(classes) },
  };
}

/** A pre-trained network prepared for the paper's methods: BN folded, cut, θ2 reparametrised. */
export interface LinearisedModel {
  readonly trunk: Graph;
  /** θ2 in stored coordinates (see `scales`). */
  readonly head: Graph;
  /** Effective = scale × stored, per θ2 key: the linearised models' coordinates for w2 (NTK by default). */
  readonly scales: ParamScales;
  /**
   * The coordinates fine-tuning trains θ2 in: standard (no scales) unless asked otherwise. Under
   * Adam, NTK coordinates would shrink every weight step by √(C_out); the paper's code fine-tunes the
   * head in the standard form and uses NTK coordinates for w2 only.
   */
  readonly finetuneScales: ParamScales;
  readonly cut: string;
  readonly features: string;
  readonly featureCount: number;
  /** Per-sample shape of the cut value (the trunk's output, the head's input). */
  readonly cutShape: readonly number[];
  /** The network's own classifier (its source task's ω). */
  readonly sourceClassifier: Classifier;
  /** Keys of θ2's trainable parameters (weights and biases; see trainableParams). */
  readonly headParamKeys: readonly string[];
  /**
   * The ω̄ inside the gradient term ω̄ᵀJw2 when it should not be the activation baseline's: the
   * paper's ablation with a random ω. w1 still starts from the baseline.
   */
  readonly gradientTermClassifier?: Classifier;
  /**
   * The head (same nodes and keys, in stored coordinates) at which J is evaluated when it should not
   * be θ̄2: the paper's ablation with a random θ2. The features f(x) stay those of θ̄2.
   */
  readonly gradientTermHead?: Graph;
}

/** Where to cut and how to parametrise θ2. */
export interface LineariseOptions {
  readonly cut: string;
  /** Default 'ntk', as in the paper. */
  readonly parametrisation?: Parametrisation;
  /** Default true: BatchNorm must be folded for θ2's convolutions to be trainable. */
  readonly foldBatchNorm?: boolean;
  /** Coordinates fine-tuning trains θ2 in; default 'standard' whatever `parametrisation` is. */
  readonly finetuneParametrisation?: Parametrisation;
}

/** Prepares a network for the paper's methods: folds BatchNorm, cuts it at `cut` and reparametrises θ2. */
export function linearise(network: Graph, options: LineariseOptions): LinearisedModel {
  const prepared = options.foldBatchNorm === false ? network : foldBatchNorm(network);
  const split = cutNetwork(prepared, options.cut);
  const { graph: head, scales } =
    (options.parametrisation ?? 'ntk') === 'ntk' ? ntkParametrisation(split.head) : standardParametrisation(split.head);
  const featureShape = inferShapes(head).get(split.features) as readonly number[];
  if (featureShape.length !== 2) {
    throw new Error(`the classifier's input '${split.features}' must be [batch, features], got [${featureShape.join(', ')}]`);
  }
  const headParamKeys = trainableParams(head);
  return {
    trunk: split.trunk,
    head,
    scales,
    finetuneScales: (options.finetuneParametrisation ?? 'standard') === 'ntk' ? scales : new Map(),
    cut: split.cut,
    features: split.features,
    featureCount: featureShape[1],
    cutShape: (inferShapes(head).get(split.cut) as readonly number[]).slice(1),
    sourceClassifier: { weight: split.classifier.weight, bias: split.classifier.bias },
    headParamKeys,
  };
}
