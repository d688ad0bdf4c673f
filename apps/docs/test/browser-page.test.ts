import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CLASS_NAMES_KEY, openOnnxModelSession, PREPROCESSING_KEY, readOnnxModelInfo } from '@gradfeat/backend-onnx';
import { INPUT, type Method, RunDirectory, relativeError } from '@gradfeat/core';
import { ImagePipeline, openDataset, transformForModel } from '@gradfeat/datasets';
import { unzipSync } from 'fflate';
import type { Browser, Page } from 'playwright-core';
import { extract } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModel, tinyMobileNet } from '../../../packages/backend-tfjs/test/keras-models.js';
import { runCli } from '../../../packages/cli/test/run-cli.js';
import { encodePng, patternImage } from '../../../packages/datasets/test/helpers.js';
import {
  CROSS_ORIGIN_ISOLATION,
  consoleErrors,
  describeWithChromium,
  FAKE_CAMERA_FLAGS,
  launchChromium,
  type StaticServer,
  serveDirectory,
} from '../../../test-support/browser.js';
import { builtDocsSite } from '../../../test-support/docs-site.js';
import { hasShared, sharedPath } from '../../../test-support/shared.js';
import { MODELS_FOLDER, PAGE_MODEL } from '../browser/protocol.js';

const PAGE = 'guide/browser';
const MOBILENET = sharedPath('models', 'mobilenet_v1_0.25_224');
/** Images per CIFAR class fed to the page; a third class is recorded from Chromium's fake camera. */
const PER_CLASS = 10;
const CAMERA_FRAMES = 6;
/** The page trains on onnxruntime-web (wasm), the CLI on onnxruntime-node: float32 rounding apart. */
const TOLERANCE = 1e-5;

/** Image files per class, as a user would drop them into the page's class boxes. */
type ClassImages = Record<string, string[]>;

/**
 * What the page adapts and the CLI repeats: ../shared's MobileNet (copied into the site by the docs
 * build) and CIFAR-10 JPEGs when ../shared is present; otherwise a MobileNet-shaped network with
 * random weights, served in place of the model the site lacks, and generated PNG patterns.
 */
interface PageInputs {
  /** The model folder `gradfeat compare --model` reads. */
  readonly model: string;
  readonly images: ClassImages;
  /** URL paths the server answers with these contents instead of the site's files. */
  readonly served: Readonly<Record<string, Uint8Array>>;
}

let inputs: Promise<PageInputs> | undefined;
function pageInputs(directory: string): Promise<PageInputs> {
  inputs ??= hasShared ? extractCifar(directory).then((images) => ({ model: MOBILENET, images, served: {} })) : generatedInputs(directory);
  return inputs;
}

/** The first PER_CLASS test images of two CIFAR-10 classes, from the JPEG archive in ../shared. */

async function extractCifar(directory: string): Promise<ClassImages> {
  const classes = ['airplane', 'automobile'];
  const names = classes.flatMap((c) => Array.from({ length: PER_CLASS }, (_, i) => `test/${c}/${String(i).padStart(4, '0')}.jpg`));
  await extract({ file: sharedPath('data', 'cifar10', 'cifar-10-jpg.tar.gz'), cwd: directory }, names);
  return Object.fromEntries(classes.map((c) => [c, names.filter((n) => n.includes(`/${c}/`)).map((n) => join(directory, n))]));
}

async function generatedInputs(directory: string): Promise<PageInputs> {
  // The same layers twice: with a classifier for the CLI, up to the features for the page.
  const { features, classifier } = tinyMobileNet();
  const model = join(directory, 'generated-model');
  const pageModel = join(directory, 'generated-page-model');
  await mkdir(model);
  await mkdir(pageModel);
  await saveModel(classifier, model);
  await saveModel(features, pageModel);
  const served: Record<string, Uint8Array> = {
    [`/${MODELS_FOLDER}index.json`]: new TextEncoder().encode(JSON.stringify({ models: [PAGE_MODEL] })),
  };
  for (const name of ['model.json', 'group1-shard1of1']) {
    served[`/${MODELS_FOLDER}${PAGE_MODEL}/${name}`] = await readFile(join(pageModel, name));
  }
  const images: ClassImages = {};
  for (const [index, name] of ['pattern-a', 'pattern-b'].entries()) {
    await mkdir(join(directory, name));
    images[name] = [];
    for (let i = 0; i < PER_CLASS; i++) {
      const file = join(directory, name, `${i}.png`);
      await writeFile(file, encodePng(patternImage(40 + 8 * index, 32, index * 100 + i)));
      images[name].push(file);
    }
  }
  return { model, images, served };
}

async function openPage(browser: Browser, server: StaticServer): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const errors = consoleErrors(page);
  await page.goto(`${server.url}${PAGE}`);
  await page.waitForSelector('.gf-status:not([data-state="loading"])', { timeout: 60_000 });
  return { page, errors };
}

/** Fills the first two class boxes with the CIFAR images and names them after their classes. */
async function addFiles(page: Page, images: ClassImages): Promise<void> {
  const boxes = page.locator('.gf-class');
  for (const [index, [name, files]] of Object.entries(images).entries()) {
    await boxes.nth(index).locator('.gf-class-name').fill(name);
    await boxes.nth(index).locator('input[type=file]').setInputFiles(files);
    await expect.poll(() => boxes.nth(index).locator('.gf-count').textContent()).toBe(`${files.length} images`);
  }
}

async function train(page: Page, epochs: number): Promise<void> {
  await page.locator('.gf-epochs').fill(String(epochs));
  await page.locator('.gf-batch').fill('8');
  await page.locator('.gf-train-button').click();
  await page.waitForSelector('.gf-results, .gf-train .gf-error', { timeout: 240_000 });
  expect((await page.locator('.gf-train .gf-error').allTextContents()).join('\n'), 'the page reports').toBe('');
}

async function downloaded(page: Page, button: string): Promise<Buffer> {
  const download = page.waitForEvent('download');
  await page.locator(button).click();
  return readFile(await (await download).path());
}

interface PageResults {
  readonly backend: string;
  readonly threads: number;
  readonly methods: Record<Method, { heldOutAccuracy: number; finalLoss: number; losses: number[] }>;
}

describeWithChromium('the browser page in Chromium (built docs site on loopback)', () => {
  let browser: Browser;
  let server: StaticServer;
  let site: string;
  let work: string;
  beforeAll(async () => {
    // The docs build, shared with the site test; it copies MobileNet's features from ../shared into the site when present.
    site = await builtDocsSite();
    work = await mkdtemp(join(tmpdir(), 'gradfeat-page-'));
    browser = await launchChromium(FAKE_CAMERA_FLAGS);
  }, 600_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('explains, without a console error, that the model is missing from a site built without ../shared', async () => {
    // What such a build writes: an index of models listing none (and no model files).
    const index = JSON.stringify({ models: [], missing: { [PAGE_MODEL]: 'the docs were built without ../shared' } });
    const bare = await serveDirectory(site, {}, { [`/${MODELS_FOLDER}index.json`]: index });
    try {
      const { page, errors } = await openPage(browser, bare);
      expect(await page.locator('.gf-status').getAttribute('data-state')).toBe('missing');
      expect(await page.locator('.gf-status').textContent()).toMatch(/model is missing from this build.*built without \.\.\/shared/s);
      expect(await page.locator('.gf-train-button').isDisabled()).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      await bare.close();
    }
  });

  describe(`trained on ${hasShared ? 'CIFAR-10 images' : 'generated images (no ../shared)'} and camera frames`, () => {
    let page: Page;
    let errors: string[];
    let results: PageResults;
    let used: PageInputs;
    beforeAll(async () => {
      used = await pageInputs(work);
      server = await serveDirectory(site, {}, used.served);
      ({ page, errors } = await openPage(browser, server));
    }, 120_000);

    it('loads the model and runs one WebAssembly thread without cross-origin isolation', async () => {
      expect(await page.locator('.gf-status').getAttribute('data-state')).toBe('ready');
      expect(await page.locator('.gf-backend').textContent()).toBe('onnxruntime-web-wasm');
      expect(await page.locator('.gf-threads').textContent()).toBe('1');
    });

    it.skipIf(!hasShared)('serves MobileNet from ../shared without its ImageNet classifier (skipped without ../shared)', async () => {
      // Only the trunk-and-head weights: the 1,000-class classifier's file (group29, 1 MB) is not in the site.
      const manifest = JSON.parse(await readFile(join(site, MODELS_FOLDER, PAGE_MODEL, 'model.json'), 'utf8'));
      const paths: string[] = manifest.weightsManifest.flatMap((group: { paths: string[] }) => group.paths);
      expect(paths).toHaveLength(54);
      expect(paths).not.toContain('group29-shard1of1');
    });

    it('trains the activation, full and fine-tuning models on dropped files and recorded camera frames', async () => {
      await addFiles(page, used.images);
      await page.locator('.gf-add-class').click();
      const camera = page.locator('.gf-class').nth(2);
      await camera.locator('.gf-class-name').fill('camera');
      await page.locator('.gf-camera-start').click();
      await page.waitForFunction(() => (document.querySelector('.gf-camera video') as HTMLVideoElement | null)?.videoWidth);
      await camera.locator('.gf-record').hover();
      await page.mouse.down();
      await page.waitForFunction(
        (frames) => document.querySelectorAll('.gf-class')[2].querySelectorAll('img').length >= frames,
        CAMERA_FRAMES,
      );
      await page.mouse.up();
      await train(page, 2);
      results = JSON.parse((await downloaded(page, '.gf-download-results')).toString('utf8'));
      expect(Object.keys(results.methods)).toEqual(['activation', 'full', 'finetune']);
      for (const outcome of Object.values(results.methods)) {
        expect(outcome.losses.length).toBeGreaterThan(0);
        expect(outcome.losses.every(Number.isFinite)).toBe(true);
        expect(outcome.heldOutAccuracy).toBeGreaterThanOrEqual(0);
      }
      // Live predictions on the camera: one probability per class, for the selected model.
      await expect.poll(() => page.locator('.gf-bars').getAttribute('data-source'), { timeout: 30_000 }).toBe('camera');
      expect(await page.locator('.gf-bars li').count()).toBe(3);
    });

    it(`gives the CLI's numbers: gradfeat compare on the downloaded images and settings (loss curves within ${TOLERANCE})`, async ({
      annotate,
    }) => {
      const images = join(work, 'gradfeat-images');
      for (const [name, bytes] of Object.entries(unzipSync(await downloaded(page, '.gf-download-images')))) {
        await mkdir(dirname(join(images, name)), { recursive: true });
        await writeFile(join(images, name), bytes);
      }
      const config = join(work, 'gradfeat-run.json');
      await writeFile(config, await downloaded(page, '.gf-download-settings'));
      const out = join(work, 'cli-run');
      const cli = await runCli([
        'compare',
        '--config',
        config,
        '--model',
        used.model,
        '--dataset',
        `folder:${images}`,
        '--out',
        out,
        '--json',
      ]);
      expect(cli.code, cli.stderr).toBe(0);
      const reported = JSON.parse(cli.stdout).methods as Record<Method, { top1: number }>;
      const run = await RunDirectory.open(out);
      for (const [method, outcome] of Object.entries(results.methods) as [Method, PageResults['methods'][Method]][]) {
        const cliLosses = (await run.loadCheckpoint(method))?.history.map((record) => record.loss) ?? [];
        expect(cliLosses, `${method}: steps`).toHaveLength(outcome.losses.length);
        const error = relativeError(outcome.losses, cliLosses).relative;
        expect(error, `${method}: loss curve`).toBeLessThanOrEqual(TOLERANCE);
        expect(outcome.heldOutAccuracy, `${method}: held-out accuracy`).toBeCloseTo(reported[method].top1, 10);
        await annotate(`${method}: ${outcome.losses.length} steps, loss curves ${error.toExponential(1)} apart (relative)`);
      }
    });

    it("downloads the trained models as ONNX: class names and preprocessing in its metadata, the page's held-out accuracy on onnxruntime-node", async () => {
      const file = join(work, 'full.onnx');
      await writeFile(file, await downloaded(page, '.gf-results tr[data-method="full"] .gf-onnx'));
      const info = await readOnnxModelInfo(file);
      expect(JSON.parse(info.metadata.get(CLASS_NAMES_KEY) ?? '[]')).toEqual([...Object.keys(used.images), 'camera']);
      const preprocessing = JSON.parse(info.metadata.get(PREPROCESSING_KEY) ?? '{}');
      expect(preprocessing).toEqual({ size: [224, 224], scale: 1 / 127.5, offset: -1 });
      // The held-out images the CLI read (previous test), through the same transform, into the exported model.
      const dataset = await openDataset(`folder:${join(work, 'gradfeat-images')}`, 'test');
      const pipeline = await ImagePipeline.create(dataset, { transform: transformForModel(preprocessing, 'eval'), workers: 0 });
      const session = await openOnnxModelSession(file);
      let correct = 0;
      try {
        for await (const batch of pipeline.batches({ batchSize: 64 })) {
          const { logits } = await session.run({ [INPUT]: batch.images });
          const labels = (batch.targets as { labels: Int32Array }).labels;
          labels.forEach((label, row) => {
            const scores = logits.data.subarray(row * 3, (row + 1) * 3);
            if (scores.indexOf(Math.max(...scores)) === label) correct++;
          });
        }
      } finally {
        await session.release();
        await pipeline.close();
      }
      expect(correct / dataset.length).toBeCloseTo(results.methods.full.heldOutAccuracy, 10);
    });

    it('logged no console error', () => {
      expect(errors).toEqual([]);
    });
  });

  describe('served with COOP/COEP headers', () => {
    it('is cross-origin isolated and trains on WebAssembly threads', async () => {
      const used = await pageInputs(work);
      const isolated = await serveDirectory(site, CROSS_ORIGIN_ISOLATION, used.served);
      try {
        const { page, errors } = await openPage(browser, isolated);
        const cores = await page.evaluate(() => navigator.hardwareConcurrency);
        expect(await page.locator('.gf-status').textContent()).toContain('(cross-origin isolated)');
        expect(await page.locator('.gf-threads').textContent()).toBe(String(Math.min(4, cores)));
        await addFiles(page, used.images);
        await train(page, 1);
        expect(await page.locator('.gf-results tbody tr').count()).toBe(3);
        expect(errors).toEqual([]);
      } finally {
        await isolated.close();
      }
    });
  });
});
