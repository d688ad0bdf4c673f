import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeImporterCoverage } from '../../../test-support/importer-coverage.js';
import { LAYOUT_OPS } from '../src/keras/builder.js';
import { importKerasModel } from '../src/keras/index.js';
import { LAYER_CONVERTERS, NOT_IMPORTED_FROM_KERAS } from '../src/keras/layers.js';
import { saveModel } from './keras-models.js';

describeImporterCoverage('Keras (TF.js layers)', {
  produces: {
    ...Object.fromEntries(Object.entries(LAYER_CONVERTERS).map(([className, converter]) => [className, converter.emits])),
    '(inserted where a layer needs another IR shape)': LAYOUT_OPS,
  },
  notImported: NOT_IMPORTED_FROM_KERAS,
});

describe('the Keras importer keeps to its declared mapping', () => {
  let directory: string;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    directory = await mkdtemp(join(tmpdir(), 'gradfeat-keras-mapping-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('a converter that adds an op its emits do not list is an error, not a silent gap in the coverage test', async () => {
    const model = tfl.sequential({ layers: [tfl.layers.dense({ name: 'hidden', inputShape: [4], units: 3, activation: 'relu' })] });
    const file = await saveModel(model, directory);
    expect((await importKerasModel(file)).nodes.map((n) => n.op)).toEqual(['Dense', 'ReLU']);
    const converters = LAYER_CONVERTERS as Record<string, (typeof LAYER_CONVERTERS)[string]>;
    const dense = converters.Dense;
    converters.Dense = { ...dense, emits: ['Dense'] };
    try {
      await expect(importKerasModel(file)).rejects.toThrow(
        "the Dense converter added ReLU, which its 'emits' does not list (an importer bug)",
      );
    } finally {
      converters.Dense = dense;
    }
  });
});
