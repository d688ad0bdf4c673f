import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { build } from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';
import { describe } from 'vitest';

/**
 * A real browser for tests: Debian's Chromium (or GRADFEAT_CHROMIUM) driven by playwright-core (no
 * bundled browser download), and a static file server on loopback. `.ci/run` installs chromium when
 * it is missing.
 */
export const CHROMIUM = process.env.GRADFEAT_CHROMIUM ?? '/usr/bin/chromium';

export const hasChromium = existsSync(CHROMIUM);

/** Headless, no GPU, nothing fetched in the background (the flags the project's browser tests use). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Chromium's fake camera (a moving test pattern) with the permission prompt answered yes. */
export const FAKE_CAMERA_FLAGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

/** A describe block that runs only where Chromium is installed, and says why it skipped otherwise. */
export function describeWithChromium(name: string, body: () => void): void {
  if (hasChromium) describe(name, body);
  else describe.skip(`${name} (skipped: ${CHROMIUM} not found; .ci/run installs it with apt-get install chromium)`, body);
}

export function launchChromium(extraFlags: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, ...extraFlags] });
}

/** Everything the page logs as an error (console.error and uncaught exceptions), for a test to expect none. */
export function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console.error: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  return errors;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** The headers that make a page cross-origin isolated, so that WebAssembly threads can share memory. */
export const CROSS_ORIGIN_ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
} as const;

export interface StaticServer {
  /** http://127.0.0.1:<port>/ */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves a directory on loopback as a static host would: `x` falls back to `x.html` and a folder to
 * its index.html (VitePress's clean URLs); anything else is a 404. `replaced` gives other contents
 * for some URL paths, e.g. what a different build would have written there.
 */
export async function serveDirectory(
  root: string,
  headers: Readonly<Record<string, string>> = {},
  replaced: Readonly<Record<string, string | Uint8Array>> = {},
): Promise<StaticServer> {
  const base = resolve(root);
  const fileFor = async (urlPath: string): Promise<string | undefined> => {
    const path = normalize(join(base, decodeURIComponent(urlPath)));
    if (path !== base && !path.startsWith(base + sep)) return undefined;
    for (const candidate of [path, `${path}.html`, join(path, 'index.html')]) {
      if ((await stat(candidate).catch(() => undefined))?.isFile()) return candidate;
    }
    return undefined;
  };
  const server = createServer(async (request, response) => {
    const urlPath = new URL(request.url ?? '/', 'http://localhost').pathname;
    for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
    if (urlPath in replaced) {
      response.writeHead(200, { 'content-type': CONTENT_TYPES[extname(urlPath)] ?? 'application/octet-stream' }).end(replaced[urlPath]);
      return;
    }
    const file = await fileFor(urlPath);
    if (!file) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' });
    response.end(await readFile(file));
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((closed) => server.close(() => closed())),
  };
}

/** onnxruntime-web's .wasm and .mjs files, which a page bundle loads at run time (see `OnnxWebBackendOptions.wasmPaths`). */
export const ORT_WEB_FILES = '/ort/';

export interface ScriptPage {
  /** The folder holding index.html, the bundle and ORT_WEB_FILES. */
  readonly directory: string;
  remove(): Promise<void>;
}

/**
 * A page that runs `script` (an ES module's source, bundled for the browser by esbuild with imports
 * resolved from `resolveDir`, workspace packages from their sources as in the tests), with
 * onnxruntime-web's run-time files beside it under ORT_WEB_FILES.
 */
export async function scriptPage(script: string, resolveDir: string): Promise<ScriptPage> {
  const directory = await mkdtemp(join(tmpdir(), 'gradfeat-page-'));
  await build({
    stdin: { contents: script, resolveDir, loader: 'ts' },
    bundle: true,
    platform: 'browser',
    conditions: ['source'],
    format: 'esm',
    splitting: true,
    outdir: directory,
    entryNames: 'main',
    logLevel: 'silent',
  });
  const require = createRequire(join(resolveDir, 'package.json'));
  const ortDist = dirname(require.resolve('onnxruntime-web/wasm'));
  await symlink(ortDist, join(directory, ORT_WEB_FILES.replaceAll('/', '')));
  await writeFile(
    join(directory, 'index.html'),
    '<!doctype html><html><head><link rel="icon" href="data:,"><script type="module" src="./main.js"></script></head><body></body></html>',
  );
  return { directory, remove: () => rm(directory, { recursive: true, force: true }) };
}
