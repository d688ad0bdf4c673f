import { readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import {
  DEFAULT_TRAINING,
  isPathInside,
  METHODS,
  type Method,
  NotRegisteredError,
  OPTIMISER_DEFAULTS,
  type OptimiserSettings,
  type Parametrisation,
  RUN_CONFIG_FILE,
  registeredBackends,
  type TrainConfig,
  trainConfigOf,
} from '@gradfeat/core';
import { MAX_DECODE_WORKERS, parseDatasetSpec } from '@gradfeat/datasets';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isModulePath, loadPlugins, type PluginRequest, withPluginHint } from './plugins.js';

/**
 * The run config of `gradfeat train` / `gradfeat compare`: defaults, then a JSON or YAML file, then
 * command-line flags, each overriding the one before. The resolved config is what a run directory
 * stores, so a resumed run trains with exactly the same settings.
 */

/** Numbers in a config are finite: YAML's .inf is as wrong a learning rate as a typo. */
const finite = z.number().finite();
const wholeNumber = (minimum: number) => z.number().int().min(minimum);
const positive = finite.positive();
const decayRate = finite.min(0).lt(1);
/** A split names a dataset sub-folder and the cache folder beside the others: one plain folder name. */
const splitName = z
  .string()
  .min(1)
  .superRefine((name, context) => {
    if (name === '.' || name === '..' || /[/\\]/.test(name)) {
      context.addIssue({
        code: z.ZodIssueCode.custom,
        message: `expected a single folder name (no '/' or '\\', not '.' or '..'), got ${show(name)}`,
      });
    }
  });
const splitsSchema = z.object({ train: splitName, test: splitName }).strict();

const sgdSchema = z.object({ kind: z.literal('sgd'), momentum: decayRate }).strict();
const adamSchema = z.object({ kind: z.literal('adam'), beta1: decayRate, beta2: decayRate, epsilon: positive }).strict();
/** Full-batch L-BFGS, for the convex models (activation, gradient, full): history pairs and gradient tolerance. */
const lbfgsSchema = z.object({ kind: z.literal('lbfgs'), history: wholeNumber(1), tolerance: positive }).strict();

const methodTrainingSchema = z
  .object({
    epochs: wholeNumber(1),
    batchSize: wholeNumber(1),
    learningRate: positive,
    /** L2 penalty added to the gradient. */
    weightDecay: finite.min(0),
    /** Halve the learning rate every this many steps (the paper's step schedule); none when absent. */
    halveEvery: wholeNumber(1).optional(),
    /** Clip the global gradient norm to this value; none when absent. */
    clipNorm: positive.optional(),
    optimiser: z.discriminatedUnion('kind', [sgdSchema, adamSchema, lbfgsSchema]),
  })
  .strict();

// Dataset kinds and backends are the registered plugins' (the config's own `plugins` load first).
const datasetSpecSchema = z.string().superRefine((text, context) => {
  try {
    parseDatasetSpec(text);
  } catch (error) {
    context.addIssue({ code: z.ZodIssueCode.custom, message: withPluginHint(error) });
  }
});

const backendSchema = z.string().superRefine((name, context) => {
  const names = registeredBackends().map((backend) => backend.name);
  if (!names.includes(name)) {
    const error = new NotRegisteredError('backend', name, names, `expected one of ${names.join(', ')}, got ${show(name)}`);
    context.addIssue({ code: z.ZodIssueCode.custom, message: withPluginHint(error) });
  }
});

const methodSchema = z.enum(METHODS as Readonly<[Method, ...Method[]]>);
const rgb = z.array(finite).length(3);
const preprocessingSchema = z
  .object({
    mean: rgb.optional(),
    std: rgb.optional(),
    scale: finite.optional(),
    offset: finite.optional(),
    size: z.tuple([wholeNumber(1), wholeNumber(1)]).optional(),
    resizeShorter: wholeNumber(1).optional(),
  })
  .strict();
const PARAMETRISATIONS = ['ntk', 'standard'] as const satisfies readonly Parametrisation[];

const runConfigSchema = z
  .object({
    /** A model file gradfeat can read (.onnx, TF.js model.json). */
    model: z.string().min(1),
    /** KIND:PATH, e.g. cifar10:/data/cifar-10-batches-bin. */
    dataset: datasetSpecSchema,
    splits: splitsSchema,
    /**
     * Accept a test split that reads the training images (a single CIFAR .bin, one folder): reports then
     * show training accuracy. Absent means false, so runs from before this option still resume.
     */
    testOnTrainingSplit: z.boolean().optional(),
    /** The node whose value θ1 (the frozen trunk) outputs; θ2 is everything after it. */
    cut: z.string().min(1),
    /** Execution backend; absent: the fastest that starts. */
    backend: backendSchema.optional(),
    /**
     * Plugin modules to load before the rest is checked: paths (relative to the config file) or
     * installed packages' names, e.g. a dataset format the run reads.
     */
    plugins: z.array(z.string().min(1)).optional(),
    methods: z
      .array(methodSchema)
      .min(1)
      .superRefine((methods, context) => {
        methods.forEach((method, i) => {
          if (methods.indexOf(method) < i)
            context.addIssue({ code: z.ZodIssueCode.custom, path: [i], message: `'${method}' is listed twice` });
        });
      }),
    parametrisation: z.enum(PARAMETRISATIONS),
    /** Coordinates fine-tuning trains θ2 in (the paper's code: standard, whatever `parametrisation` is). */
    finetuneParametrisation: z.enum(PARAMETRISATIONS),
    /**
     * Cache the linearised models' point (features and residuals) per training sample so that their
     * steps skip the frozen head: 'auto' does where that is faster (see pointCachePays).
     */
    pointCache: z.enum(['auto', 'on', 'off']),
    training: z
      .object({
        activation: methodTrainingSchema,
        gradient: methodTrainingSchema,
        full: methodTrainingSchema,
        finetune: methodTrainingSchema,
      })
      .strict(),
    seed: wholeNumber(0),
    /** The run directory. */
    out: z.string().min(1),
    /** Store cached cut values as float16, halving memory and disk. */
    float16Cache: z.boolean(),
    /** Leave out images that cannot be read or decoded (each is logged and counted) instead of stopping. */
    skipBadImages: z.boolean(),
    /** Image-decoding worker threads; absent: one per core, 0: decode on the main thread. */
    workers: wholeNumber(0).max(MAX_DECODE_WORKERS).optional(),
    /**
     * Each training step's gradient as the sum of this many parts of its batch (one job each with
     * --redis); the same number gives the same numbers bit for bit, on workers or here.
     */
    gradientParts: wholeNumber(1),
    /** Save each method's training state every this many steps, for --resume. */
    checkpointEvery: wholeNumber(1),
    /** Pick the weight decay of these methods from `values` on a held-out part of the training split. */
    weightDecaySweep: z
      .object({
        values: z.array(finite.min(0)).min(1),
        heldOutFraction: z.number().gt(0).lt(1).default(0.1),
        methods: z.array(methodSchema).min(1).default(['activation']),
      })
      .strict()
      .optional(),
    /** Overrides or completes the preprocessing the model file states (ONNX files usually state none). */
    preprocessing: preprocessingSchema.optional(),
    /** Test-time crops: one centre crop, or the paper's ten crops with averaged logits. */
    testCrop: z.enum(['center', 'ten-crop']),
    /** Where the trunk outputs are cached; absent: `<out>/cache`. */
    cacheDir: z.string().min(1).optional(),
    /** Images per trunk batch during extraction. */
    extractBatchSize: wholeNumber(1),
    /** Approximate size of a feature-cache shard in bytes (a worker's unit of extraction work); absent: 64 MiB. */
    shardBytes: wholeNumber(1).optional(),
    /** Replace pre-trained parts by a random initialisation, for the paper's ablation. */
    randomise: z.array(z.enum(['theta1', 'theta2', 'omega'])),
    /** Learning rates changed with --lr on --resume, as gradfeat recorded them (not a setting). */
    learningRateChanges: z
      .array(z.object({ method: methodSchema, fromStep: wholeNumber(0), from: positive, to: positive, at: z.string() }).strict())
      .optional(),
  })
  .strict();

/** Every field optional, and `training.all` for settings shared by all methods. */
const methodTrainingInputSchema = methodTrainingSchema
  .extend({
    optimiser: z
      .object({
        kind: z.enum(['sgd', 'adam', 'lbfgs']),
        momentum: decayRate,
        beta1: decayRate,
        beta2: decayRate,
        epsilon: positive,
        history: wholeNumber(1),
        tolerance: positive,
      })
      .partial()
      .strict(),
  })
  .partial()
  .strict();

const runConfigInputSchema = runConfigSchema
  .extend({
    splits: splitsSchema.partial(),
    training: z
      .object({
        all: methodTrainingInputSchema,
        activation: methodTrainingInputSchema,
        gradient: methodTrainingInputSchema,
        full: methodTrainingInputSchema,
        finetune: methodTrainingInputSchema,
      })
      .partial()
      .strict(),
  })
  .partial()
  .strict();

export type RunConfig = z.output<typeof runConfigSchema>;
export type LearningRateChange = NonNullable<RunConfig['learningRateChanges']>[number];
export type MethodTraining = RunConfig['training'][Method];
/** A config file's contents or the flags: any subset of the fields, checked but not yet merged. */
export type RunConfigInput = z.input<typeof runConfigInputSchema>;
export type RunConfigDefaults = Omit<RunConfig, 'model' | 'dataset' | 'cut'>;

export const DEFAULT_RUN_CONFIG: RunConfigDefaults = {
  splits: { train: 'train', test: 'test' },
  methods: [...METHODS],
  parametrisation: 'ntk',
  finetuneParametrisation: 'standard',
  pointCache: 'auto',
  training: DEFAULT_TRAINING,
  seed: 0,
  out: 'gradfeat-run',
  float16Cache: false,
  skipBadImages: false,
  checkpointEvery: 500,
  gradientParts: 1,
  testCrop: 'center',
  extractBatchSize: 128,
  randomise: [],
};

/**
 * Reads and checks a JSON or YAML run config, after loading the plugins it names. Relative paths in it
 * (model, dataset, out, plugins) are taken relative to the file's directory, so a config works from
 * any working directory.
 */
export async function loadRunConfig(path: string): Promise<RunConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`${path}: cannot read the run config: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both.
    parsed = parseYaml(text);
  } catch (error) {
    // The parser recurses into nested collections: hundreds of levels exhaust the stack, which it
    // reports as V8's RangeError message inside its own error.
    const tooDeep = /Maximum call stack/.test((error as Error).message);
    const problem = tooDeep ? 'nested too deeply to read (a run config is a few levels deep)' : (error as Error).message;
    throw new Error(`${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${problem}`);
  }
  if (!isRecord(parsed)) {
    throw new Error(`${path}: expected a mapping of settings at the top level, got ${parsed == null ? 'an empty file' : show(parsed)}`);
  }
  const base = dirname(resolve(path));
  await loadPlugins(pluginRequests(parsed.plugins, path, base));
  return withAbsolutePaths(check(runConfigInputSchema, parsed, path), base);
}

/** A config's `plugins` as load requests; anything but a list of names is left to the schema to report. */
function pluginRequests(plugins: unknown, origin: string, base: string): PluginRequest[] {
  if (!Array.isArray(plugins) || !plugins.every((module) => typeof module === 'string' && module !== '')) return [];
  return plugins.map((module) => ({ module, origin, base }));
}

/**
 * Merges defaults ← file ← flags (flags win). Within each source, `training.all` applies before
 * `training.<method>`, so a flag for all methods still overrides a file's per-method value.
 * Setting an optimiser `kind` other than the current one starts from that kind's defaults.
 * Relative paths from flags are taken relative to the working directory. `origin` names where the
 * merged config came from in errors, e.g. the config file.
 */
export function resolveRunConfig(fileConfig: RunConfigInput = {}, flags: RunConfigInput = {}, origin = 'run config'): RunConfig {
  const { training: defaultTraining, ...defaultRest } = DEFAULT_RUN_CONFIG;
  let merged: Record<string, unknown> = defaultRest;
  const training: Record<string, Record<string, unknown>> = { ...defaultTraining };
  for (const source of [fileConfig, check(runConfigInputSchema, flags, 'command-line flags')]) {
    const { training: layers, ...rest } = source;
    merged = overlay(merged, rest);
    for (const method of METHODS) {
      for (const layer of [layers?.all, layers?.[method]]) if (layer) training[method] = overlayTraining(training[method], layer);
    }
  }
  const config = check(runConfigSchema, { ...merged, training }, origin);
  return withAbsolutePaths(config, process.cwd());
}

/**
 * The config as its run directory stores it: `out` as '.', and a cache directory inside the run as a
 * path relative to it, so that the directory can be moved or renamed and still be resumed or evaluated.
 */
export function storedRunConfig(config: RunConfig): RunConfigInput {
  const { out, cacheDir } = config;
  return {
    ...config,
    out: '.',
    ...(cacheDir !== undefined && { cacheDir: isPathInside(out, cacheDir) ? relative(out, cacheDir) : cacheDir }),
  };
}

/**
 * A run directory's stored config read back, after loading the plugins it names: `out` is where the
 * directory is now, relative paths are taken from there.
 */
export async function runConfigFromStored(stored: unknown, directory: string): Promise<RunConfig> {
  const origin = join(directory, RUN_CONFIG_FILE);
  await loadPlugins(pluginRequests((stored as { plugins?: unknown } | null)?.plugins, origin, directory));
  const input = check(runConfigInputSchema, stored, origin);
  return resolveRunConfig(withAbsolutePaths({ ...input, out: directory }, directory));
}

/** The core trainer's settings for one method of a resolved config. */
export function trainConfigFor(config: RunConfig, method: Method): TrainConfig {
  return { ...trainConfigOf(config.training[method], config.seed), gradientParts: config.gradientParts };
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Objects merge field by field; anything else (numbers, strings, lists) is replaced; undefined leaves the base. */
function overlay(base: Record<string, unknown>, layer: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const result = { ...base };
  for (const [key, value] of Object.entries(layer)) {
    if (value === undefined) continue;
    const current = result[key];
    result[key] = isRecord(value) && isRecord(current) ? overlay(current, value) : value;
  }
  return result;
}

function overlayTraining(base: Record<string, unknown>, layer: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const kind = (layer.optimiser as { kind?: OptimiserSettings['kind'] } | undefined)?.kind;
  const current = base.optimiser as OptimiserSettings;
  return overlay(kind && kind !== current.kind ? { ...base, optimiser: OPTIMISER_DEFAULTS[kind] } : base, layer);
}

function withAbsolutePaths<T extends { model?: string; dataset?: string; out?: string; cacheDir?: string; plugins?: string[] }>(
  config: T,
  base: string,
): T {
  const dataset = config.dataset === undefined ? undefined : parseDatasetSpec(config.dataset);
  return {
    ...config,
    ...(config.plugins !== undefined && {
      plugins: config.plugins.map((module) => (isModulePath(module) ? resolve(base, module) : module)),
    }),
    ...(config.model !== undefined && { model: resolve(base, config.model) }),
    ...(dataset && { dataset: `${dataset.kind}:${resolve(base, dataset.path)}` }),
    ...(config.out !== undefined && { out: resolve(base, config.out) }),
    ...(config.cacheDir !== undefined && { cacheDir: resolve(base, config.cacheDir) }),
  };
}

function check<S extends z.ZodTypeAny>(schema: S, value: unknown, source: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new Error(result.error.issues.map((issue) => describeIssue(source, issue, value)).join('\n'));
}

/** One line per problem: `<source>: <field path>: <what was expected>, got <value>`. */
function describeIssue(source: string, issue: z.ZodIssue, input: unknown): string {
  const field = issue.path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
  const value = issue.path.reduce<unknown>((node, part) => (node as Record<string | number, unknown> | undefined)?.[part], input);
  return `${source}: ${field ? `${field}: ` : ''}${expectation(issue, value)}`;
}

function expectation(issue: z.ZodIssue, value: unknown): string {
  switch (issue.code) {
    case z.ZodIssueCode.invalid_type:
      if (value === undefined) return 'is required; set it in the run config or on the command line';
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${show(value)}`;
    case z.ZodIssueCode.invalid_enum_value:
    case z.ZodIssueCode.invalid_union_discriminator:
      return `expected one of ${issue.options.join(', ')}, got ${show(value)}`;
    case z.ZodIssueCode.invalid_literal:
      return `expected ${show(issue.expected)}, got ${show(value)}`;
    case z.ZodIssueCode.unrecognized_keys:
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `'${key}'`).join(', ')}`;
    case z.ZodIssueCode.too_small:
      if (issue.type === 'array') return `expected at least ${issue.minimum} entr${issue.minimum === 1 ? 'y' : 'ies'}`;
      if (issue.type === 'string') return 'must not be empty';
      return `expected a number ${issue.inclusive ? '≥' : '>'} ${issue.minimum}, got ${show(value)}`;
    case z.ZodIssueCode.not_finite:
      return `expected a finite number, got ${show(value)}`;
    case z.ZodIssueCode.too_big:
      return `expected a number ${issue.inclusive ? '≤' : '<'} ${issue.maximum}, got ${show(value)}`;
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping of fields',
};

function show(value: unknown): string {
  const text =
    typeof value === 'string' ? `'${value}'` : typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
