import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { describeWithShared, SHARED_DIR } from '../../../test-support/shared.js';

const docs = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(docs, '..', '..');
const READMES = ['README.md', ...readdirSync(join(repo, 'packages')).map((name) => join('packages', name, 'README.md'))];

/** Every ```ts block of the READMEs, named by file and position. */
const snippets = READMES.flatMap((readme) =>
  [...readFileSync(join(repo, readme), 'utf8').matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((match, i) => ({
    name: `${readme} snippet ${i + 1}`,
    code: match[1],
  })),
);

// Snippets are written inside this package, so their imports resolve to the workspace packages; they run
// in an empty folder beside a link to ../shared, so '../shared/…' paths and files they write land there.
const scratch = mkdtempSync(join(docs, '.readme-snippets-'));
const sandbox = mkdtempSync(join(tmpdir(), 'gradfeat-readme-'));
const cwd = join(sandbox, 'work');
mkdirSync(cwd);
symlinkSync(SHARED_DIR, join(sandbox, 'shared'));
const tsx = pathToFileURL(join(repo, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(sandbox, { recursive: true, force: true });
});

describeWithShared('the README code snippets run as written', () => {
  it('finds the snippets of the core, backend and datasets READMEs', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(7);
  });

  it.each(snippets)('$name', ({ name, code }) => {
    const file = join(scratch, `${name.replace(/\W+/g, '-')}.ts`);
    writeFileSync(file, code);
    const run = spawnSync(process.execPath, ['--conditions=source', '--import', tsx, file], { cwd, encoding: 'utf8' });
    expect(run.status, `${relative(repo, file)}:\n${run.stderr}`).toBe(0);
    expect(run.stderr).not.toMatch(/Error/);
  });
});
