import { METHODS, type Method } from '@gradfeat/core';
import { type Command, Option } from 'commander';
import { backendOption } from './backends.js';
import { loadRunConfig, type RunConfig, type RunConfigInput, resolveRunConfig } from './config.js';
import { integerOption, numberList, numberOption } from './parse.js';
import { datasetKinds } from './plugins.js';

/** Options shared by extract, train and compare; each maps onto a run-config field. */
export interface RunFlags {
  readonly config?: string;
  readonly model?: string;
  readonly dataset?: string;
  readonly cut?: string;
  readonly backend?: string;
  readonly trainSplit?: string;
  readonly testSplit?: string;
  readonly testOnTrainingSplit?: boolean;
  readonly methods?: Method[];
  readonly parametrisation?: 'ntk' | 'standard';
  readonly finetuneParametrisation?: 'ntk' | 'standard';
  readonly pointCache?: 'auto' | 'on' | 'off';
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly lr?: number;
  readonly weightDecay?: number;
  readonly optimiser?: 'sgd' | 'adam' | 'lbfgs';
  readonly halveEvery?: number;
  readonly clipNorm?: number;
  readonly seed?: number;
  readonly out?: string;
  readonly cacheDir?: string;
  readonly float16Cache?: boolean;
  readonly skipBadImages?: boolean;
  readonly shardMib?: number;
  readonly workers?: number;
  readonly testCrop?: 'center' | 'ten-crop';
  readonly mean?: number[];
  readonly std?: number[];
  readonly imageSize?: number;
  readonly randomise?: ('theta1' | 'theta2' | 'omega')[];
  readonly sweepWeightDecay?: number[];
  readonly gradientParts?: number;
  /** Not a run setting: where the work runs (see `gradfeat worker`). */
  readonly redis?: string;
}

export function addRunOptions(command: Command): Command {
  return command
    .option('--config <file>', 'run config (JSON or YAML); flags override its values')
    .option('--model <path>', 'pre-trained network: an .onnx file or a TF.js layers model')
    .option('--dataset <KIND:PATH>', `dataset, KIND one of ${datasetKinds()}; e.g. folder:/data/cifar-10-jpg or voc2007:/data/VOC`)
    .option('--cut <node>', 'the node θ1 ends at; θ2 is everything after it (see `gradfeat info`)')
    .addOption(backendOption())
    .option('--train-split <name>', 'training split (default train)')
    .option('--test-split <name>', 'test split (default test)')
    .option(
      '--test-on-training-split',
      'accept a test split that reads the training images (e.g. one CIFAR .bin file): the report then shows training accuracy',
    )
    .addOption(new Option('--parametrisation <p>', 'coordinates of w2 in the linearised models (default ntk)').choices(['ntk', 'standard']))
    .addOption(
      new Option('--finetune-parametrisation <p>', 'coordinates fine-tuning trains θ2 in (default standard)').choices(['ntk', 'standard']),
    )
    .addOption(
      new Option(
        '--point-cache <mode>',
        "cache the linearised models' features and residuals per training sample (default auto: where that is faster than evaluating the head)",
      ).choices(['auto', 'on', 'off']),
    )
    .option('--epochs <n>', 'epochs for every method', integerOption('--epochs', 1))
    .option('--batch-size <n>', 'batch size for every method', integerOption('--batch-size', 1))
    .option('--lr <x>', 'learning rate for every method', numberOption('--lr'))
    .option('--weight-decay <x>', 'L2 weight decay for every method', numberOption('--weight-decay'))
    .addOption(
      new Option(
        '--optimiser <kind>',
        'optimiser for every method (default: sgd for the probe, adam β1=0.5 otherwise; lbfgs: full-batch, for activation, gradient and full)',
      ).choices(['sgd', 'adam', 'lbfgs']),
    )
    .option('--halve-every <steps>', 'halve the learning rate every this many steps', integerOption('--halve-every', 1))
    .option('--clip-norm <x>', 'clip the global gradient norm', numberOption('--clip-norm'))
    .option('--seed <n>', 'random seed (default 0)', integerOption('--seed'))
    .option('--out <dir>', 'run directory (default gradfeat-run)')
    .option('--cache-dir <dir>', 'feature cache directory (default <out>/cache)')
    .option('--float16-cache', 'store cached trunk outputs as float16')
    .option('--skip-bad-images', 'leave out images that cannot be read or decoded (each is logged and counted in the report)')
    .option('--shard-mib <x>', "feature-cache shard size in MiB, a worker's unit of extraction (default 64)", numberOption('--shard-mib'))
    .option('--workers <n>', 'image-decoding threads (default: one per core)', integerOption('--workers'))
    .addOption(new Option('--test-crop <mode>', 'test-time crops (default center)').choices(['center', 'ten-crop']))
    .option('--mean <r,g,b>', "input mean after x/255, when the model file doesn't say", numberList('--mean'))
    .option('--std <r,g,b>', "input std after x/255, when the model file doesn't say", numberList('--std'))
    .option('--image-size <n>', 'square input size, when the model file does not say', integerOption('--image-size', 1))
    .option(
      '--sweep-weight-decay <values>',
      "choose the linear probe's weight decay among these (e.g. 0,1e-4,1e-3) on 10 % of the training split held out",
      numberList('--sweep-weight-decay'),
    )
    .addOption(
      new Option(
        '--randomise <parts...>',
        'ablation: a random θ1 (trunk), or a random θ2 or ω where the gradient term ω̄ᵀJw2 is evaluated',
      ).choices(['theta1', 'theta2', 'omega']),
    )
    .option(
      '--redis <url>',
      'coordinate `gradfeat worker`s on other machines through this Redis (e.g. redis://10.0.0.5:6379); data and run directory on shared storage',
    )
    .option(
      '--gradient-parts <n>',
      "each step's gradient as the sum of this many parts: with --redis one job each, so set it to the workers' number (default 1)",
      integerOption('--gradient-parts', 1),
    );
}

export function methodsOption(): Option {
  return new Option('--methods <list...>', `methods to compare (default all: ${METHODS.join(' ')})`).choices(METHODS);
}

/** Flags → the run-config layer they set (undefined leaves the file's or the default value). */
function flagsToConfig(flags: RunFlags): RunConfigInput {
  const all = {
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    learningRate: flags.lr,
    weightDecay: flags.weightDecay,
    halveEvery: flags.halveEvery,
    clipNorm: flags.clipNorm,
    optimiser: flags.optimiser ? { kind: flags.optimiser } : undefined,
  };
  const preprocessing = {
    mean: flags.mean,
    std: flags.std,
    size: flags.imageSize ? ([flags.imageSize, flags.imageSize] as [number, number]) : undefined,
  };
  const defined = <T extends object>(value: T): T | undefined => (Object.values(value).some((v) => v !== undefined) ? value : undefined);
  return {
    model: flags.model,
    dataset: flags.dataset,
    cut: flags.cut,
    backend: flags.backend,
    splits: defined({ train: flags.trainSplit, test: flags.testSplit }) as RunConfigInput['splits'],
    testOnTrainingSplit: flags.testOnTrainingSplit,
    methods: flags.methods,
    parametrisation: flags.parametrisation,
    finetuneParametrisation: flags.finetuneParametrisation,
    pointCache: flags.pointCache,
    training: defined(all) ? { all } : undefined,
    seed: flags.seed,
    out: flags.out,
    cacheDir: flags.cacheDir,
    float16Cache: flags.float16Cache,
    skipBadImages: flags.skipBadImages,
    gradientParts: flags.gradientParts,
    shardBytes: flags.shardMib === undefined ? undefined : Math.max(1, Math.round(flags.shardMib * 2 ** 20)),
    workers: flags.workers,
    testCrop: flags.testCrop,
    preprocessing: defined(preprocessing),
    randomise: flags.randomise,
    weightDecaySweep: flags.sweepWeightDecay ? { values: flags.sweepWeightDecay } : undefined,
  };
}

/** Defaults ← --config file ← flags. */
export async function resolveRunFlags(flags: RunFlags): Promise<RunConfig> {
  const file = flags.config ? await loadRunConfig(flags.config) : {};
  return resolveRunConfig(file, flagsToConfig(flags), flags.config ? `run config (${flags.config} and the command line)` : 'run config');
}
