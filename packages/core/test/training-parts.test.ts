import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import {
  applyUpdate,
  averagePrecision,
  clipGradientNorm,
  createReferenceBackend,
  type HostTensor,
  learningRateAt,
  lossAndGradient,
  meanAveragePrecision,
  type OptimiserState,
  runProgramOnce,
  topKAccuracy,
} from '../src/index.js';
import { OPTIMISERS_WASM_BASE64 } from '../src/train/optimisers-wasm.js';

const param = (values: number[]): HostTensor => ({ shape: [values.length], data: Float32Array.from(values) });
/** How many values differ in their bits (Object.is: −0 ≠ 0, NaN = NaN). */
const mismatches = (a: Float32Array, b: Float32Array) => a.reduce((count, x, i) => count + (Object.is(x, b[i]) ? 0 : 1), 0);

/**
 * 50 steps of Adam or SGD (weight decay on) through `update` on 16384 + 1027 values (WebAssembly takes
 * 16384 at a time: a second, partial chunk and a 3-value tail for the JavaScript loop), against the
 * float64 formulas written out here; returns how many stored values differ in their bits.
 */
function mismatchesAfterSteps(update: typeof applyUpdate, kind: 'adam' | 'sgd'): number {
  const n = 16384 + 1027;
  const adam = { kind: 'adam', learningRate: 0.002, beta1: 0.5, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-6 } as const;
  const sgd = { kind: 'sgd', learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4 } as const;
  const start = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
  const params = new Map([['w', { shape: [n], data: start.slice() }]]);
  const state: OptimiserState = {};
  const w = start.slice();
  const [m, v] = [new Float32Array(n), new Float32Array(n)];
  for (let step = 1; step <= 50; step++) {
    // Gradients spanning many binades, zeros and signs included.
    const grad = Float32Array.from({ length: n }, (_, i) => (i % 11 === 0 ? 0 : Math.cos(step * 1.3 + i) * 10 ** ((i % 9) - 5)));
    if (kind === 'adam') {
      update(adam, params, new Map([['w', grad]]), state, adam.learningRate, step);
      const stepSize = adam.learningRate / (1 - adam.beta1 ** step);
      const correction2Root = Math.sqrt(1 - adam.beta2 ** step);
      for (let i = 0; i < n; i++) {
        const g = grad[i] + adam.weightDecay * w[i];
        m[i] = adam.beta1 * m[i] + (1 - adam.beta1) * g;
        v[i] = adam.beta2 * v[i] + (1 - adam.beta2) * g * g;
        w[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / correction2Root + adam.epsilon);
      }
    } else {
      const learningRate = sgd.learningRate / step;
      update(sgd, params, new Map([['w', grad]]), state, learningRate, step);
      for (let i = 0; i < n; i++) {
        v[i] = sgd.momentum * v[i] + grad[i] + sgd.weightDecay * w[i];
        w[i] -= learningRate * v[i];
      }
    }
  }
  const expected = kind === 'adam' ? [w, m, v] : [w, v];
  const actual = [(params.get('w') as HostTensor).data, ...state.w];
  return expected.reduce((count, values, i) => count + mismatches(actual[i], values), 0);
}

describe('optimisers', () => {
  it('SGD with momentum and weight decay follows v ← μv + g + λw, w ← w − ηv', () => {
    const params = new Map([['w', param([1, -2])]]);
    const state: OptimiserState = {};
    const config = { kind: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 0.01 } as const;
    applyUpdate(config, params, new Map([['w', Float32Array.of(0.5, 1)]]), state, 0.1, 1);
    // v = 0.5 + 0.01 = 0.51, w = 1 − 0.051; v = 1 − 0.02 = 0.98, w = −2 − 0.098
    expect([...(params.get('w') as HostTensor).data]).toEqual([Math.fround(1 - 0.051), Math.fround(-2 - 0.098)]);
    applyUpdate(config, params, new Map([['w', Float32Array.of(0, 0)]]), state, 0.1, 2);
    expect((params.get('w') as HostTensor).data[0]).toBeCloseTo(0.949 - 0.1 * (0.9 * 0.51 + 0.01 * 0.949), 6);
  });

  it("Adam's first step moves each weight by the learning rate against the gradient's sign (β1 = 0.5 default)", () => {
    const params = new Map([['w', param([1, 1])]]);
    const state: OptimiserState = {};
    applyUpdate({ kind: 'adam', learningRate: 0.01 }, params, new Map([['w', Float32Array.of(3, -0.2)]]), state, 0.01, 1);
    expect((params.get('w') as HostTensor).data[0]).toBeCloseTo(0.99, 6);
    expect((params.get('w') as HostTensor).data[1]).toBeCloseTo(1.01, 6);
    expect(state.w[0][0]).toBeCloseTo(1.5, 6);
  });

  it("Adam follows torch.optim.Adam's update over many steps, weight decay included (float64 reference, 1e-6 relative)", () => {
    const config = { kind: 'adam', learningRate: 0.003, beta1: 0.5, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01 } as const;
    const start = [0.7, -1.3, 0.02, 5];
    const params = new Map([['w', param(start)]]);
    const state: OptimiserState = {};
    // torch.optim.Adam (1.13): g += λw; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
    // w −= (η / (1−β1ᵗ))·m / (√v / √(1−β2ᵗ) + ε), with m and v stored as float32.
    const w = [...start];
    const m = [0, 0, 0, 0];
    const v = [0, 0, 0, 0];
    for (let step = 1; step <= 200; step++) {
      const grad = w.map((wi, i) => Math.fround(Math.sin(step * (i + 1)) + 0.3 * wi));
      applyUpdate(config, params, new Map([['w', Float32Array.from(grad)]]), state, config.learningRate, step);
      for (let i = 0; i < w.length; i++) {
        const g = grad[i] + config.weightDecay * w[i];
        m[i] = Math.fround(config.beta1 * m[i] + (1 - config.beta1) * g);
        v[i] = Math.fround(config.beta2 * v[i] + (1 - config.beta2) * g * g);
        const stepSize = config.learningRate / (1 - config.beta1 ** step);
        w[i] = Math.fround(w[i] - (stepSize * m[i]) / (Math.sqrt(v[i]) / Math.sqrt(1 - config.beta2 ** step) + config.epsilon));
      }
    }
    const actual = (params.get('w') as HostTensor).data;
    for (let i = 0; i < w.length; i++) expect(Math.abs(actual[i] - w[i]) / Math.abs(w[i])).toBeLessThanOrEqual(1e-6);
  });

  it.each(['adam', 'sgd'] as const)(
    '%s through WebAssembly SIMD gives the bits of the float64 loop, over two chunks and a 3-value tail',
    (kind) => {
      expect(mismatchesAfterSteps(applyUpdate, kind)).toBe(0);
    },
  );

  it('without WebAssembly the JavaScript loops do the whole update, to the same bits', async () => {
    vi.resetModules();
    vi.stubGlobal('WebAssembly', undefined);
    try {
      const simd = await import('../src/train/optimisers-simd.js');
      const one = Float32Array.of(1, 2, 3, 4);
      expect(simd.sgdLeading(one, one.slice(), one.slice(), { momentum: 0.9, decay: 0, learningRate: 0.1 })).toBe(0);
      const { applyUpdate: hostOnly } = await import('../src/train/optimisers.js');
      expect(mismatchesAfterSteps(hostOnly, 'adam')).toBe(0);
      expect(mismatchesAfterSteps(hostOnly, 'sgd')).toBe(0);
    } finally {
      vi.unstubAllGlobals();
      vi.resetModules();
    }
  });

  it('the committed WebAssembly bytes are those of optimisers.wat (regenerate: pnpm --filter @gradfeat/core assemble-wasm)', async () => {
    const { assembleWat } = await import('../scripts/wat.mjs');
    const wat = readFileSync(fileURLToPath(new URL('../src/train/optimisers.wat', import.meta.url)), 'utf8');
    expect(Buffer.from(await assembleWat(wat)).toString('base64')).toBe(OPTIMISERS_WASM_BASE64);
  });

  it('halves the learning rate every K steps and clips the global gradient norm', () => {
    const config = { kind: 'sgd', learningRate: 0.8 } as const;
    expect([0, 9, 10, 25].map((s) => learningRateAt(config, { halveEvery: 10 }, s))).toEqual([0.8, 0.8, 0.4, 0.2]);
    expect(learningRateAt(config, undefined, 1000)).toBe(0.8);
    const grads = new Map([
      ['a', Float32Array.of(3)],
      ['b', Float32Array.of(4)],
    ]);
    expect(clipGradientNorm(grads, 1)).toBeCloseTo(5, 6);
    expect(grads.get('a')?.[0]).toBeCloseTo(0.6, 6);
    expect(grads.get('b')?.[0]).toBeCloseTo(0.8, 6);
  });

  it('names a parameter that got no gradient', () => {
    expect(() => applyUpdate({ kind: 'sgd', learningRate: 1 }, new Map([['w2:x', param([1])]]), new Map(), {}, 1, 1)).toThrow(/'w2:x'/);
  });
});

describe('losses', () => {
  const backend = createReferenceBackend();
  const logits = { shape: [2, 3], data: Float32Array.of(1, 2, 3, -1, 0, 4) };
  const targets = { shape: [2, 3], data: Float32Array.of(0, 0, 1, 1, 0, 0) };
  const run = (kind: 'softmax-ce' | 'sigmoid-bce', mask?: HostTensor) =>
    runProgramOnce(
      backend,
      {
        program: (k, inputs) => {
          const terms = lossAndGradient(k, kind, inputs.logits, inputs.targets, inputs.scale, inputs.mask);
          return { loss: terms.loss, dlogits: terms.dlogits };
        },
        inputs: { logits: logits.shape, targets: targets.shape, scale: [1], ...(mask ? { mask: mask.shape } : {}) },
        outputs: { loss: [1], dlogits: logits.shape },
      },
      { logits, targets, scale: { shape: [1], data: Float32Array.of(0.5) }, ...(mask ? { mask } : {}) },
      kind,
    );

  it('softmax cross-entropy equals −mean log softmax and its gradient is (p − y)/N', async () => {
    const { loss, dlogits } = await run('softmax-ce');
    const lse = (a: number[]) => Math.log(a.reduce((s, v) => s + Math.exp(v), 0));
    const expected = (-(3 - lse([1, 2, 3])) - (-1 - lse([-1, 0, 4]))) / 2;
    expect(loss.data[0]).toBeCloseTo(expected, 5);
    expect(dlogits.data[2]).toBeCloseTo((Math.exp(3 - lse([1, 2, 3])) - 1) / 2, 6);
  });

  it('masked sigmoid cross-entropy ignores masked entries', async () => {
    const mask = { shape: [2, 3], data: Float32Array.of(1, 1, 1, 0, 1, 1) };
    const { loss, dlogits } = await run('sigmoid-bce', mask);
    const bce = (x: number, y: number) => -(y * Math.log(1 / (1 + Math.exp(-x))) + (1 - y) * Math.log(1 - 1 / (1 + Math.exp(-x))));
    const expected = (bce(1, 0) + bce(2, 0) + bce(3, 1) + bce(0, 0) + bce(4, 0)) / 2;
    expect(loss.data[0]).toBeCloseTo(expected, 5);
    expect(Math.abs(dlogits.data[3])).toBe(0);
  });
});

describe('metrics', () => {
  it('top-k accuracy counts ties against the label', () => {
    const logits = { shape: [3, 3], data: Float32Array.of(0.1, 0.9, 0.0, 0.5, 0.5, 0.2, 0.3, 0.2, 0.1) };
    expect(topKAccuracy(logits, [1, 1, 2], 1)).toBeCloseTo(1 / 3, 12);
    expect(topKAccuracy(logits, [1, 1, 2], 2)).toBeCloseTo(2 / 3, 12);
  });

  it('average precision: VOC07 11-point and area under the precision envelope, ignoring difficult', () => {
    // Ranked truth: +, −, +, (difficult), −, +  → precision at the positives 1, 2/3, 3/5
    const scores = [0.9, 0.8, 0.7, 0.65, 0.6, 0.5];
    const truth = [1, 0, 1, -1, 0, 1];
    expect(averagePrecision(scores, truth, 'area')).toBeCloseTo((1 + 2 / 3 + 3 / 5) / 3, 10);
    // Recall 0..1/3 → 1 (4 thresholds), ..2/3 → 2/3 (3 thresholds), ..1 → 3/5 (4 thresholds).
    expect(averagePrecision(scores, truth, 'voc07')).toBeCloseTo((4 * 1 + 3 * (2 / 3) + 4 * (3 / 5)) / 11, 10);
    expect(Number.isNaN(averagePrecision([0.1], [0], 'area'))).toBe(true);
  });

  it('mAP averages the classes that have positives', () => {
    const scores = { shape: [2, 2], data: Float32Array.of(0.9, 0.1, 0.2, 0.8) };
    const truth = { shape: [2, 2], data: Float32Array.of(1, 0, 0, 0) };
    const result = meanAveragePrecision(scores, truth, 'area');
    expect(result.perClass[0]).toBe(1);
    expect(Number.isNaN(result.perClass[1])).toBe(true);
    expect(result.mean).toBe(1);
  });
});
