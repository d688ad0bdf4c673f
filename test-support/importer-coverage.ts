import { type OpType, registeredOps } from '@gradfeat/core';
import { describe, expect, it } from 'vitest';

/**
 * What an importer declares: for each source construct (an ONNX op type, a Keras layer class), the IR
 * ops it may produce — the importer refuses to produce any other — and the IR ops it never produces,
 * each with the reason.
 */
export interface ImporterMapping {
  readonly produces: Readonly<Record<string, readonly OpType[]>>;
  readonly notImported: Readonly<Partial<Record<OpType, string>>>;
}

/**
 * Driven by the op registry: an op added to the IR with rules but neither produced by the importer nor
 * declared as not imported fails here, and so does a mapping that names an op without rules.
 */
export function describeImporterCoverage(importer: string, mapping: ImporterMapping): void {
  describe(`the ${importer} importer's op mapping against the op registry`, () => {
    const produced = new Set(Object.values(mapping.produces).flat());

    it('produces every op with rules, or says why it does not', () => {
      expect(registeredOps().filter((op) => !produced.has(op) && mapping.notImported[op] === undefined)).toEqual([]);
    });

    it('names only ops that have rules', () => {
      const registered = new Set<string>(registeredOps());
      const unknown = Object.entries(mapping.produces).flatMap(([source, ops]) =>
        ops.filter((op) => !registered.has(op)).map((op) => `${source} → ${op}`),
      );
      expect(unknown).toEqual([]);
    });

    it('declares as not imported only ops with rules that it does not produce, each with a reason', () => {
      const entries = Object.entries(mapping.notImported) as [OpType, string][];
      const registered = new Set<string>(registeredOps());
      expect(entries.filter(([op]) => produced.has(op) || !registered.has(op)).map(([op]) => op)).toEqual([]);
      expect(entries.filter(([, reason]) => reason.trim().length < 10).map(([op]) => op)).toEqual([]);
    });
  });
}
