import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vitepress';
import { MODELS_FOLDER, type ModelsIndex, PAGE_MODEL } from '../browser/protocol.js';

/**
 * The browser page's model: MobileNet v1 0.25 from `../shared` beside the repository. Its weights
 * are third-party (Google, Apache-2.0) and never committed here: a docs build copies them into the
 * site when `../shared` is present, and the page says the model is missing otherwise.
 */
export const SHARED_MOBILENET = fileURLToPath(new URL(`../../../../shared/models/${PAGE_MODEL}`, import.meta.url));

/** The last layer the page uses: the pooled features. After it comes the 1,000-class ImageNet classifier (1 MB), which a new task replaces. */
export const FEATURES_LAYER = 'global_average_pooling2d_1';

interface KerasLayer {
  readonly name: string;
}
interface WeightGroup {
  readonly paths: readonly string[];
  readonly weights: readonly { readonly name: string }[];
}

/**
 * The files of the model up to its features: model.json with the layers after FEATURES_LAYER and
 * their weight groups removed, and the weight files the remaining layers need. Undefined when
 * `../shared` is absent.
 */
export function featureModelFiles(directory = SHARED_MOBILENET): Map<string, Uint8Array> | undefined {
  const modelPath = join(directory, 'model.json');
  if (!existsSync(modelPath)) return undefined;
  const model = JSON.parse(readFileSync(modelPath, 'utf8'));
  const config = model.modelTopology.model_config.config;
  const layers: KerasLayer[] = config.layers;
  const end = layers.findIndex((layer) => layer.name === FEATURES_LAYER);
  if (end < 0) throw new Error(`${modelPath}: no layer '${FEATURES_LAYER}' to end the features at`);
  const kept = new Set(layers.slice(0, end + 1).map((layer) => layer.name));
  config.layers = layers.slice(0, end + 1);
  config.output_layers = [[FEATURES_LAYER, 0, 0]];
  const layerOf = (weight: { name: string }) => weight.name.split('/')[0];
  const groups: WeightGroup[] = model.weightsManifest;
  for (const group of groups) {
    const inside = group.weights.filter((w) => kept.has(layerOf(w))).length;
    if (inside > 0 && inside < group.weights.length)
      throw new Error(`${modelPath}: a weight group mixes kept and removed layers (${group.paths})`);
  }
  model.weightsManifest = groups.filter((group) => group.weights.every((w) => kept.has(layerOf(w))));
  // metadata.json is where an importer looks for class names: this model has none, only features.
  const metadata = {
    description: `MobileNet v1 0.25 (ImageNet) up to its pooled features (${FEATURES_LAYER}); the 1,000-class classifier is removed`,
    license: "Apache-2.0 (Google's Keras/TF.js MobileNet weights)",
  };
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  const files = new Map<string, Uint8Array>([
    ['model.json', encode(model)],
    ['metadata.json', encode(metadata)],
  ]);
  for (const group of model.weightsManifest as WeightGroup[])
    for (const path of group.paths) files.set(path, readFileSync(join(directory, path)));
  return files;
}

/**
 * The site's models folder: index.json, which says whether the page's model is there, and the
 * feature model's files when ../shared is present. Paths relative to the folder.
 */
export function siteModelFiles(): Map<string, Uint8Array> {
  const model = featureModelFiles();
  const index: ModelsIndex = model
    ? { models: [PAGE_MODEL] }
    : { models: [], missing: { [PAGE_MODEL]: `the docs were built without ${SHARED_MOBILENET}` } };
  const files = new Map<string, Uint8Array>([['index.json', new TextEncoder().encode(JSON.stringify(index))]]);
  for (const [name, bytes] of model ?? []) files.set(`${PAGE_MODEL}/${name}`, bytes);
  return files;
}

/** Writes the models folder into a built site; false when the page's model could not be included. */
export async function writeSiteModels(outDir: string): Promise<boolean> {
  const files = siteModelFiles();
  for (const [name, bytes] of files) {
    const target = join(outDir, MODELS_FOLDER, name);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, bytes);
  }
  return files.size > 1;
}

/** Serves the models folder (from ../shared) on the docs dev server. */
export function siteModelsDevServer(base: string): Plugin {
  return {
    name: 'gradfeat-site-models',
    apply: 'serve',
    configureServer(server) {
      const prefix = `${base}${MODELS_FOLDER}`;
      let files: Map<string, Uint8Array> | undefined;
      server.middlewares.use((request, response, next) => {
        const path = request.url?.split('?')[0] ?? '';
        if (!path.startsWith(prefix)) return next();
        files ??= siteModelFiles();
        const bytes = files.get(path.slice(prefix.length));
        if (!bytes) return next();
        response.setHeader('content-type', path.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        response.end(bytes);
      });
    },
  };
}
