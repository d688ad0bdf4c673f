import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, type StaticServer, serveDirectory } from '../../../test-support/browser.js';
import { builtDocsSite } from '../../../test-support/docs-site.js';

/**
 * The documentation site as a reader sees it: built into a temp folder, served over HTTP on the
 * loopback address, and read by Debian's Chromium. Every page must load without a console error,
 * every link inside the site must reach a page (and its #anchor), and the local search must find
 * things. The home page's screenshot is kept in apps/docs/test-artifacts/ (gitignored).
 */
const docs = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ARTIFACTS = join(docs, 'test-artifacts');
let out = '';
let server: StaticServer;
let origin = '';
let browser: Browser;

/** The file a site path is served from, as VitePress's own preview server maps it. */
function fileFor(path: string): string | undefined {
  const clean = normalize(decodeURIComponent(path.split(/[?#]/)[0]));
  for (const candidate of [clean, `${clean}.html`, join(clean, 'index.html')]) {
    const file = join(out, candidate);
    if (file.startsWith(out) && existsSync(file) && statSync(file).isFile()) return file;
  }
  return undefined;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium), as .ci/run does`);
  // The docs build: TypeDoc (which fails on an undocumented export) writes the API pages, then VitePress the site.
  out = await builtDocsSite();
  server = await serveDirectory(out);
  origin = server.url.replace(/\/$/, '');
  browser = await launchChromium();
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

interface PageVisit {
  /** Where the router ended up, and whether it rendered VitePress's 404 page. */
  readonly at: string;
  readonly notFound: boolean;
  /** Links on the page, resolved. */
  readonly links: string[];
  readonly ids: string[];
}

/**
 * Client-side navigation as a click on a link does it (VitePress's router, found among the Vue app's
 * provides), then what the rendered page links to and which anchors it has.
 */
function visitInPage(path: string): Promise<PageVisit> {
  return (async () => {
    const app = (document.querySelector('#app') as unknown as { __vue_app__: { _context: { provides: Record<symbol, unknown> } } })
      .__vue_app__;
    const provides = app._context.provides;
    const router = Object.getOwnPropertySymbols(provides)
      .map((key) => provides[key] as { go?: (to: string) => Promise<void> })
      .find((value) => typeof value?.go === 'function');
    if (!router?.go) throw new Error("VitePress's router was not found in the page");
    await router.go(path);
    await new Promise((settled) => setTimeout(settled, 0));
    return {
      at: location.pathname,
      notFound: document.querySelector('.NotFound') !== null,
      links: [...document.querySelectorAll('a[href]')].map((a) => (a as HTMLAnchorElement).href),
      ids: [...document.querySelectorAll('[id]')].map((element) => element.id),
    };
  })();
}

describe('the documentation site in Chromium', () => {
  it('loads every page without console errors, and every link inside the site reaches a page and its anchor', async () => {
    const page = await browser.newPage();
    // External links are not fetched: the test runs offline.
    await page.route(
      (url) => url.origin !== origin,
      (route) => route.abort(),
    );
    let current = '/';
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`${current}: ${message.text()}`);
    });
    page.on('pageerror', (error) => errors.push(`${current}: ${error.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) errors.push(`${current}: HTTP ${response.status()} for ${response.url()}`);
    });
    expect((await page.goto(`${origin}/`, { waitUntil: 'load' }))?.ok()).toBe(true);

    // Every page the site links to, found by following links from the home page.
    const visits = new Map<string, PageVisit>();
    const queue = ['/'];
    while (queue.length > 0) {
      current = queue.shift() as string;
      const visit = await page.evaluate(visitInPage, current);
      visits.set(current, visit);
      for (const link of visit.links) {
        const target = link.startsWith(origin) ? link.slice(origin.length).split('#')[0] : undefined;
        if (target && !visits.has(target) && !queue.includes(target) && fileFor(target)?.endsWith('.html')) queue.push(target);
      }
    }
    // The guide pages also as a reader arriving from outside: a full load of the server-rendered page.
    for (const path of [...visits.keys()].filter((p) => !p.startsWith('/api/'))) {
      current = `${path} (full load)`;
      expect((await page.goto(origin + path, { waitUntil: 'load' }))?.ok(), path).toBe(true);
    }
    await page.close();

    expect(visits.size).toBeGreaterThan(100);
    expect(errors).toEqual([]);
    expect([...visits].filter(([, v]) => v.notFound).map(([path]) => path)).toEqual([]);
    const broken: string[] = [];
    for (const [path, { links }] of visits) {
      for (const link of links.filter((l) => l.startsWith(origin))) {
        const [target, fragment] = link.slice(origin.length).split('#');
        const file = fileFor(target);
        if (!file) broken.push(`${path} → ${link}`);
        else if (fragment && !visits.get(target)?.ids.includes(decodeURIComponent(fragment)))
          broken.push(`${path} → ${link} (no such anchor)`);
      }
    }
    expect(broken).toEqual([]);
    // The pages readers asked for are reachable from the site's navigation.
    for (const path of ['/guide/install.html', '/guide/gpu.html', '/guide/platforms.html', '/guide/cli.html'])
      expect(visits.has(path), path).toBe(true);
  }, 600_000);

  it('finds pages with the local search, links to the paper from the home page, and keeps a screenshot of it', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.route(
      (url) => url.origin !== origin,
      (route) => route.abort(),
    );
    await page.goto(`${origin}/`, { waitUntil: 'load' });
    const paper = await page.locator('a[href="https://arxiv.org/abs/2004.05529"]').count();
    expect(paper).toBeGreaterThan(0);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'home.png'), fullPage: true });
    expect(statSync(join(ARTIFACTS, 'home.png')).size).toBeGreaterThan(10_000);

    await page.locator('.VPNavBarSearch button').click();
    await page.locator('#localsearch-input').fill('safetensors');
    const results = page.locator('.VPLocalSearchBox .result');
    await results.first().waitFor({ timeout: 10_000 });
    expect(await results.count()).toBeGreaterThan(0);
    expect(await results.allInnerTexts()).toContainEqual(expect.stringMatching(/export/i));
    await page.close();
  });
});
