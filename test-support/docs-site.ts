import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { runFolder } from './global-setup.js';

/**
 * The documentation site, built once per test run for every test that reads it (the site test, the
 * browser page's test): TypeDoc writes the API pages, then VitePress the site, as `docs:build` does.
 * Test files run in parallel processes; the first to ask builds, the others wait for it.
 */
const docs = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'apps', 'docs');

const BUILD_MINUTES = 15;

export async function builtDocsSite(): Promise<string> {
  const folder = runFolder(inject('testRun'));
  const site = join(folder, 'site');
  const outcome = join(folder, 'outcome');
  try {
    // mkdir is atomic: exactly one process gets to build.
    await mkdir(join(folder, 'building'), { recursive: false });
  } catch {
    return waitForBuild(outcome, site);
  }
  const build = promisify(execFile);
  try {
    await build('pnpm', ['exec', 'typedoc'], { cwd: docs, maxBuffer: 64 << 20 });
    await build('pnpm', ['exec', 'vitepress', 'build', '.', '--outDir', site], { cwd: docs, maxBuffer: 64 << 20 });
    await writeFile(outcome, 'built');
  } catch (error) {
    await writeFile(outcome, `failed: ${(error as Error).message}`);
    throw error;
  }
  return site;
}

async function waitForBuild(outcome: string, site: string): Promise<string> {
  const deadline = Date.now() + BUILD_MINUTES * 60_000;
  while (!existsSync(outcome)) {
    if (Date.now() > deadline) throw new Error(`the docs build another test started did not finish in ${BUILD_MINUTES} minutes`);
    await new Promise((wait) => setTimeout(wait, 500));
  }
  const result = await readFile(outcome, 'utf8');
  if (result !== 'built') throw new Error(`the docs build another test started ${result}`);
  return site;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** Unique per `vitest run`: names the folder of what its tests build once and share. */
    testRun: string;
  }
}
