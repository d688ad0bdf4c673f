import { createOnnxBackend } from '@gradfeat/backend-onnx';
import { cutNetwork, forwardProgram, type HostTensor, INPUT, OUTPUT, Rng, relativeError, runProgramOnce } from '@gradfeat/core';
import { expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { createTfjsBackend, importKerasModel } from '../src/index.js';

describeWithShared('MobileNet v1 0.25 from TF.js on both backends', () => {
  it('gives the same logits on TF.js wasm and ONNX Runtime (≤ 1e-4 relative), whole and cut at a block', async () => {
    const network = await importKerasModel(sharedPath('models', 'mobilenet_v1_0.25_224', 'model.json'));
    const rng = new Rng(5);
    const input: HostTensor = {
      shape: [2, 3, 224, 224],
      data: Float32Array.from({ length: 2 * 3 * 224 * 224 }, () => rng.uniform() * 2 - 1),
    };
    const backends = [await createTfjsBackend({ runtime: 'wasm' }), await createOnnxBackend()];
    const whole = await Promise.all(backends.map((b) => runProgramOnce(b, forwardProgram(network), { [INPUT]: input }, 'mobilenet')));
    expect(whole[0][OUTPUT].shape).toEqual([2, 1000]);
    expect(relativeError(whole[0][OUTPUT].data, whole[1][OUTPUT].data).relative).toBeLessThanOrEqual(1e-4);
    const { trunk } = cutNetwork(network, 'conv_pw_11_relu');
    const cut = await Promise.all(backends.map((b) => runProgramOnce(b, forwardProgram(trunk), { [INPUT]: input }, 'trunk')));
    expect(cut[0][OUTPUT].shape).toEqual([2, 128, 14, 14]);
    expect(relativeError(cut[0][OUTPUT].data, cut[1][OUTPUT].data).relative).toBeLessThanOrEqual(1e-4);
  });
});
