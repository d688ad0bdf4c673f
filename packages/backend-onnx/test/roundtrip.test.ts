import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deployedProgram,
  forwardProgram,
  type HostTensor,
  INPUT,
  initialTrainState,
  linearise,
  type Method,
  mapBatches,
  memorySource,
  OUTPUT,
  predict,
  relativeError,
  trainMethod,
} from '@gradfeat/core';
import * as ort from 'onnxruntime-node';
import { expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { createOnnxBackend, importOnnx, saveProgramAsOnnx } from '../src/index.js';

const RECORD = 3073;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

function cifarRecords(count: number): { images: HostTensor; targets: HostTensor } {
  const bytes = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
  const images = new Float32Array(count * 3072);
  const targets = new Float32Array(count * 10);
  for (let n = 0; n < count; n++) {
    targets[n * 10 + bytes[n * RECORD]] = 1;
    for (let i = 0; i < 3072; i++) images[n * 3072 + i] = (bytes[n * RECORD + 1 + i] / 255 - MEAN[i >> 10]) / STD[i >> 10];
  }
  return { images: { shape: [count, 3, 32, 32], data: images }, targets: { shape: [count, 10], data: targets } };
}

describeWithShared('import → train → export → ONNX Runtime', () => {
  for (const method of ['full', 'gradient', 'finetune'] as Method[]) {
    it(`the exported ${method} model's logits equal gradfeat's (≤ 1e-4 relative)`, async () => {
      const backend = await createOnnxBackend();
      const model = linearise(importOnnx(sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx')), { cut: 'layer3.1' });
      const { images, targets } = cifarRecords(64);
      const cut = memorySource(await mapBatches(backend, forwardProgram(model.trunk), memorySource(images), 32, OUTPUT));
      const omegaBar = model.sourceClassifier;
      // Fine-tuning moves θ2 in standard coordinates, where Adam's 1e-2 per weight blows the trained head up.
      const learningRate = method === 'finetune' ? 1e-3 : 1e-2;
      const config = { epochs: 1, batchSize: 16, seed: 1, optimiser: { kind: 'adam', learningRate } } as const;
      const state = await trainMethod(
        backend,
        model,
        omegaBar,
        'softmax-ce',
        { inputs: cut, targets },
        config,
        initialTrainState(model, method, omegaBar, 1),
      );
      expect(state.step).toBe(4);
      const ours = await predict(backend, model, method, omegaBar, state.params, cut, 32);

      const dir = mkdtempSync(join(tmpdir(), 'gradfeat-export-'));
      try {
        const file = join(dir, `${method}.onnx`);
        await saveProgramAsOnnx(deployedProgram(model, method, omegaBar, state.params), file);
        const session = await ort.InferenceSession.create(file);
        const output = await session.run({ [INPUT]: new ort.Tensor('float32', images.data, images.shape as number[]) });
        const theirs = output.logits.data as Float32Array;
        expect(relativeError(theirs, ours.data).relative).toBeLessThanOrEqual(1e-4);
        // Training moved the model: the exported logits are not the imported network's.
        expect(
          relativeError(
            theirs,
            (
              await mapBatches(
                backend,
                forwardProgram(importOnnx(sharedPath('models', 'resnet20-cifar10', 'resnet20.onnx'))),
                memorySource(images),
                32,
                OUTPUT,
              )
            ).data,
          ).relative,
        ).toBeGreaterThan(1e-3);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
