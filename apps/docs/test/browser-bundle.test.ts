import { builtinModules } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const docs = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Node's built-in modules, with and without the node: prefix. */
const BUILTINS = new Set(builtinModules.flatMap((name) => (name.startsWith('node:') ? [name, name.slice(5)] : [name, `node:${name}`])));

/** The core modules that need Node (files, Node's crypto): the browser entry must leave them out. */
const NODE_ONLY = [
  'io/atomic',
  'io/checkpoint',
  'io/contained-file',
  'io/directory-lock',
  'io/feature-cache-files',
  'io/file-system',
  'io/run-directory',
  'fixtures/jvp-fixture',
  'ir/fingerprint',
];

/** A static or dynamic import or a require of a Node built-in left in bundled code. */
function builtinImports(code: string): string[] {
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;
  return [...code.matchAll(pattern)].map((match) => match[1]).filter((specifier) => BUILTINS.has(specifier));
}

describe('the browser entries bundle for the browser', () => {
  it('esbuild --bundle --platform=browser of @gradfeat/core, @gradfeat/backend-onnx/web and the Keras importer leaves no Node built-in', async () => {
    // What the packages' dist folders give a bundler (the `browser` export condition); `pnpm test` builds them first.
    const result = await build({
      stdin: {
        contents: [
          "export * from '@gradfeat/core';",
          "export * from '@gradfeat/backend-onnx/web';",
          "export * from '@gradfeat/backend-tfjs/keras';",
          "export * from '@gradfeat/datasets/transform';",
        ].join('\n'),
        resolveDir: docs,
        loader: 'js',
      },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      splitting: true,
      outdir: 'bundle',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((path) => path.includes('packages/core/dist/browser.js'))).toBe(true);
    expect(inputs.some((path) => path.includes('packages/backend-onnx/dist/web/backend.js'))).toBe(true);
    // onnxruntime-web's WebAssembly and WebGPU builds, each its own chunk loaded on demand.
    expect(inputs.filter((path) => /onnxruntime-web\/dist\/ort\.(wasm|webgpu)\.bundle\.min\.mjs$/.test(path))).toHaveLength(2);
    expect(inputs.filter((path) => NODE_ONLY.some((module) => path.endsWith(`core/dist/${module}.js`)))).toEqual([]);
    const external = Object.values(result.metafile.inputs).flatMap((input) => input.imports.filter((i) => i.external).map((i) => i.path));
    expect(external.filter((path) => BUILTINS.has(path))).toEqual([]);
    for (const file of result.outputFiles) expect(builtinImports(file.text), file.path).toEqual([]);
  });

  it("fails for core's Node entry, and the check of bundled code finds each form of import", async () => {
    expect(builtinImports('import { a } from "node:fs"; import("os"); require("node:crypto"); import "path";')).toEqual([
      'node:fs',
      'os',
      'node:crypto',
      'path',
    ]);
    const bundle = (contents: string) =>
      build({ stdin: { contents, resolveDir: docs, loader: 'js' }, bundle: true, platform: 'browser', write: false, logLevel: 'silent' });
    // core's Node entry (dist/index.js, what Node resolves @gradfeat/core to) imports node:fs, node:crypto, …
    const nodeEntry = resolve(docs, '..', '..', 'packages', 'core', 'dist', 'index.js');
    await expect(bundle(`export * from ${JSON.stringify(nodeEntry)};`)).rejects.toThrow(/Could not resolve "node:/);
  });
});
