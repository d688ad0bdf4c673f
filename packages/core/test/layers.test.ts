import { readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { sourceFiles } from '../../../test-support/engine-imports.js';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** The entry points: they assemble layers and belong to none. */
const ENTRIES = ['index.ts', 'browser.ts', 'portable.ts', 'plugin.ts', 'engine/index.ts', 'engine/browser.ts', 'engine/portable.ts'];

/**
 * Core's application layer, which the engine must never import: the paper's methods, training,
 * metrics, the networks gradfeat builds, run directories, checkpoints and feature-cache files, the
 * reports, the PyTorch fixture check, benchmarks and the built-in experiment.
 */
const APPLICATION = [
  'bench/',
  'experiments/',
  'fixtures/',
  'io/atomic.ts',
  'io/checkpoint.ts',
  'io/directory-lock.ts',
  'io/feature-cache-files.ts',
  'io/run-directory.ts',
  'methods/',
  'metrics/',
  'networks/',
  'report/',
  'train/',
];
const isApplication = (module: string) => APPLICATION.some((prefix) => module.startsWith(prefix));

/** The modules of src (relative paths) that one imports, and the packages (node:…, tsyringe). */
function importsOf(module: string): { modules: string[]; packages: string[] } {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(src, module), 'utf8'), true, true);
  const specifiers = importedFiles.map((f) => f.fileName);
  return {
    modules: specifiers
      .filter((s) => s.startsWith('.'))
      .map((s) => normalize(join(dirname(module), s.replace(/\.js$/, '.ts'))).replaceAll('\\', '/')),
    packages: specifiers.filter((s) => !s.startsWith('.')),
  };
}

/** Every module an entry point loads, itself included. */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const module = pending.pop() as string;
    if (seen.has(module)) continue;
    seen.add(module);
    pending.push(...importsOf(module).modules);
  }
  return seen;
}

describe('core is an engine and an application layer on it', () => {
  const modules = sourceFiles(src).map((file) => relative(src, file).replaceAll('\\', '/'));
  const engine = new Set([...closure('engine/index.ts'), ...closure('engine/browser.ts')]);

  it('@gradfeat/core/engine loads no module of the application layer', () => {
    expect([...engine].filter(isApplication)).toEqual([]);
  });

  it('every module is in exactly one layer: loaded by the engine entry, or listed as application', () => {
    const layered = modules.filter((m) => !ENTRIES.includes(m));
    expect(layered.filter((m) => !engine.has(m) && !isApplication(m))).toEqual([]);
    expect(layered.length).toBeGreaterThan(40);
  });

  it("the engine's browser entry loads nothing of Node", () => {
    const nodeOnly = [...closure('engine/browser.ts')].flatMap((m) =>
      importsOf(m)
        .packages.filter((p) => p.startsWith('node:'))
        .map((p) => `${m}: ${p}`),
    );
    expect(nodeOnly).toEqual([]);
  });

  it('the root entries load the engine entry of their platform, so that the default FileSource is registered once', () => {
    expect(importsOf('index.ts').modules).toContain('engine/index.ts');
    expect(importsOf('browser.ts').modules).toContain('engine/browser.ts');
  });
});
