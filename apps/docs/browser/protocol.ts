import { DEFAULT_TRAINING, METHODS, type Method, type MethodTraining, type Parametrisation } from '@gradfeat/core';
import type { RgbImage } from '@gradfeat/datasets';

/** The site's folder of models (under its base), and the model the page adapts. */
export const MODELS_FOLDER = 'models/';
export const PAGE_MODEL = 'mobilenet_v1_0.25_224';

/**
 * models/index.json, which every docs build writes: the models it could copy in. A build without
 * ../shared lists none, and the page explains instead of requesting files that are not there.
 */
export interface ModelsIndex {
  readonly models: readonly string[];
  /** Why a model is missing, by name. */
  readonly missing?: Readonly<Record<string, string>>;
}

/**
 * What the page and its worker say to each other. The page holds the images and the settings; the
 * worker holds the network, the backend and the trained models.
 */

/** The page's settings, in the CLI's run-config terms so that `gradfeat compare --config` can repeat a run. */
export interface PageSettings {
  /** Where θ1 ends: θ2 is every block after it. */
  readonly cut: string;
  /** Methods to train besides the linear probe (which always runs: it gives ω̄). */
  readonly methods: readonly Method[];
  readonly seed: number;
  readonly parametrisation: Parametrisation;
  readonly training: Readonly<Record<Method, MethodTraining>>;
  /** Fraction of each class's images held out to measure accuracy. */
  readonly heldOut: number;
  /** Run on WebGPU where the browser offers an adapter. */
  readonly webgpu: boolean;
}

/** The CLI's own defaults, fewer epochs and smaller batches: a few dozen images train in seconds. */
export function defaultSettings(cut: string): PageSettings {
  const training = Object.fromEntries(METHODS.map((method) => [method, { ...DEFAULT_TRAINING[method], epochs: 5, batchSize: 16 }]));
  return {
    cut,
    methods: ['activation', 'full', 'finetune'],
    seed: 0,
    parametrisation: 'ntk',
    training: training as Record<Method, MethodTraining>,
    heldOut: 0.25,
    webgpu: false,
  };
}

/**
 * The run config `gradfeat compare --config` reads to train exactly as the page did (the model and
 * the downloaded images are given on the command line). Every training field is written out, so
 * the CLI's defaults do not matter.
 */
export function cliRunConfig(settings: PageSettings): Record<string, unknown> {
  return {
    cut: settings.cut,
    methods: ['activation', ...settings.methods.filter((m) => m !== 'activation')],
    seed: settings.seed,
    parametrisation: settings.parametrisation,
    finetuneParametrisation: 'standard',
    pointCache: 'auto',
    splits: { train: 'train', test: 'test' },
    training: settings.training,
  };
}

export interface LabelledImage {
  readonly label: number;
  readonly image: RgbImage;
}

export interface CutChoice {
  readonly name: string;
  /** Depthwise-separable blocks in θ2. */
  readonly blocks: number;
  readonly headParameters: number;
}

export interface MethodOutcome {
  readonly method: Method;
  /** Top-1 on the held-out images. */
  readonly heldOutAccuracy: number;
  readonly finalLoss: number;
  readonly trainSeconds: number;
  /** Training loss per step. */
  readonly losses: readonly number[];
}

export type ToWorker =
  /** `models` is the site's models folder, as an absolute URL. */
  | { readonly type: 'load'; readonly models: string; readonly webgpu: boolean }
  | {
      readonly type: 'train';
      readonly classes: readonly string[];
      readonly train: readonly LabelledImage[];
      readonly test: readonly LabelledImage[];
      readonly settings: PageSettings;
    }
  | { readonly type: 'predict'; readonly id: number; readonly image: RgbImage }
  | { readonly type: 'export'; readonly method: Method };

export type FromWorker =
  | {
      readonly type: 'loaded';
      readonly backend: string;
      readonly threads: number;
      readonly crossOriginIsolated: boolean;
      readonly fallbackReason?: string;
      readonly cuts: readonly CutChoice[];
      readonly weightBytes: number;
    }
  | { readonly type: 'model-missing'; readonly url: string; readonly reason: string }
  | { readonly type: 'progress'; readonly phase: string; readonly done: number; readonly total: number }
  | { readonly type: 'step'; readonly method: Method; readonly step: number; readonly totalSteps: number; readonly loss: number }
  | { readonly type: 'trained'; readonly outcomes: readonly MethodOutcome[]; readonly seconds: number }
  | { readonly type: 'prediction'; readonly id: number; readonly probabilities: Readonly<Partial<Record<Method, number[]>>> }
  | { readonly type: 'onnx'; readonly method: Method; readonly bytes: Uint8Array }
  | { readonly type: 'error'; readonly message: string };
