import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as engine from '../packages/core/src/engine/index.js';

/** One import of @gradfeat/core by a source file: the entry point and the names it takes. */
export interface CoreImport {
  readonly file: string;
  readonly specifier: string;
  /** The imported names; undefined for `import *`, `export *` and import(): the whole entry. */
  readonly names?: readonly string[];
}

/** The TypeScript files under a folder, recursively. */
export function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => join(folder, file));
}

/** Every import, re-export and dynamic import() of '@gradfeat/core' or one of its entry points in the files. */
export function coreImports(files: readonly string[], root: string): CoreImport[] {
  const found: CoreImport[] = [];
  for (const path of files) {
    const file = relative(root, path);
    const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (
        (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
        node.moduleSpecifier &&
        ts.isStringLiteral(node.moduleSpecifier)
      ) {
        const specifier = node.moduleSpecifier.text;
        if (isCore(specifier)) found.push({ file, specifier, names: importedNames(node) });
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteralLike(node.arguments[0]) &&
        isCore(node.arguments[0].text)
      ) {
        found.push({ file, specifier: node.arguments[0].text });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

function isCore(specifier: string): boolean {
  return specifier === '@gradfeat/core' || specifier.startsWith('@gradfeat/core/');
}

function importedNames(node: ts.ImportDeclaration | ts.ExportDeclaration): string[] | undefined {
  if (ts.isExportDeclaration(node)) {
    return node.exportClause && ts.isNamedExports(node.exportClause)
      ? node.exportClause.elements.map((e) => (e.propertyName ?? e.name).text)
      : undefined;
  }
  const clause = node.importClause;
  if (!clause) return [];
  const bindings = clause.namedBindings;
  if (bindings && ts.isNamespaceImport(bindings)) return undefined;
  return [...(clause.name ? ['default'] : []), ...(bindings ? bindings.elements.map((e) => (e.propertyName ?? e.name).text) : [])];
}

/**
 * A backend package sees only core's engine: its src imports `@gradfeat/core/engine` and nothing of
 * the application layer (the root entry adds the methods, training, io and reports), except the
 * names listed in `applicationNames`, each with the reason the package genuinely needs it. A listed
 * name that the engine exports is an error too: it should come from the engine.
 */
export function describeEngineOnlyImports(
  packageName: string,
  srcFolder: string,
  applicationNames: Readonly<Record<string, string>> = {},
): void {
  describe(`${packageName} imports only core's engine`, () => {
    const imports = coreImports(sourceFiles(srcFolder), srcFolder);

    it('imports @gradfeat/core/engine, and from the root entry only the application-layer names it lists', () => {
      expect(imports.length).toBeGreaterThan(0);
      const outside = imports
        .filter((i) => i.specifier !== '@gradfeat/core/engine')
        .flatMap((i) =>
          i.specifier === '@gradfeat/core' && i.names
            ? i.names.filter((name) => !(name in applicationNames)).map((name) => `${i.file}: '${name}' from ${i.specifier}`)
            : [`${i.file}: ${i.names ? i.names.join(', ') : 'everything'} from ${i.specifier}`],
        );
      expect(outside).toEqual([]);
    });

    it('lists as application-layer names only names the engine lacks, each still imported', () => {
      const used = new Set(imports.filter((i) => i.specifier === '@gradfeat/core').flatMap((i) => i.names ?? []));
      expect(Object.keys(applicationNames).filter((name) => name in engine || !used.has(name))).toEqual([]);
    });
  });
}
