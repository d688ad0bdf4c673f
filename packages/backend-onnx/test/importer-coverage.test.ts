import { describe, expect, it } from 'vitest';
import { describeImporterCoverage } from '../../../test-support/importer-coverage.js';
import { CONVERSION_RULES, type ConversionRule, NOT_IMPORTED_FROM_ONNX } from '../src/import/convert.js';
import { importOnnx } from '../src/index.js';
import { modelBytes, node } from './model-builder.js';

describeImporterCoverage('ONNX', {
  produces: Object.fromEntries(Object.entries(CONVERSION_RULES).map(([opType, rule]) => [opType, rule.emits])),
  notImported: NOT_IMPORTED_FROM_ONNX,
});

describe('the ONNX importer keeps to its declared mapping', () => {
  it('a conversion rule that emits an op its emits do not list is an error, not a silent gap in the coverage test', () => {
    const bytes = modelBytes({ input: { name: 'x', dims: ['N', 4] }, outputs: ['y'], nodes: [node('Relu', ['x'], 'y')] });
    expect(importOnnx(bytes).nodes.map((n) => n.op)).toEqual(['ReLU']);
    const rules = CONVERSION_RULES as Record<string, ConversionRule>;
    const relu = rules.Relu;
    rules.Relu = { ...relu, emits: ['LeakyReLU'] };
    try {
      expect(() => importOnnx(bytes)).toThrow("the Relu rule emitted ReLU, which its 'emits' does not list (an importer bug)");
    } finally {
      rules.Relu = relu;
    }
  });
});
