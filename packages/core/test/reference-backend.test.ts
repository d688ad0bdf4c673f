import 'reflect-metadata';
import { container } from 'tsyringe';
import { describe, expect, it } from 'vitest';
import { describeFeedChecks } from '../../../test-support/feed-checks.js';
import {
  compareKernelCase,
  convAttrs,
  kernelConformanceCases,
  signedOnReference,
  uniformTensor,
} from '../../../test-support/kernel-conformance.js';
import { adjointGaps, jvpAndFiniteDifferences, ruleCases } from '../../../test-support/rule-checks.js';
import {
  type Backend,
  type BackendPlugin,
  type Conv2DAttrs,
  corePlugin,
  createReferenceBackend,
  eagerBackend,
  hostTensor,
  KERNEL_NAMES,
  type Kernels,
  MissingKernelError,
  type Program,
  type ReferenceTensor,
  referenceKernels,
  referenceRuntime,
  registeredBackends,
  registerPlugin,
  relativeError,
  resolveBackend,
  sameShape,
  windowedSize,
} from '../src/index.js';
import { Rng } from '../src/random.js';

const k = referenceKernels();

function tensor(shape: readonly number[], values: readonly number[]): ReferenceTensor {
  return { shape, data: Float64Array.from(values) };
}

/** 1, 2, …, rows·cols as a [1, 1, rows, cols] image. */
function counting(rows: number, cols: number): ReferenceTensor {
  return tensor(
    [1, 1, rows, cols],
    Array.from({ length: rows * cols }, (_, i) => i + 1),
  );
}

function expectValues(actual: ReferenceTensor, shape: readonly number[], values: readonly number[]): void {
  expect(actual.shape).toEqual(shape);
  expect(Array.from(actual.data)).toEqual(values.map((v) => expect.closeTo(v, 12)));
}

describe('reference conv kernels on hand-computed examples', () => {
  // x = 1..16 row-major, so x[i][j] = 4i + j + 1.
  const x = counting(4, 4);

  it('conv2d: 2×2 kernel, stride 2, bias', () => {
    // out[0][0] = 1·1 + 2·2 + 3·5 + 4·6 = 44, then + 0.5; the others shift the window by 2 or 8.
    const y = k.conv2d(x, tensor([1, 1, 2, 2], [1, 2, 3, 4]), tensor([1], [0.5]), convAttrs([2, 2], [0, 0, 0, 0]));
    expectValues(y, [1, 1, 2, 2], [44.5, 64.5, 124.5, 144.5]);
  });

  it('conv2d: 3×3 ones, stride 2, pads only top and left', () => {
    // Windows start at rows/cols −1 and 1: sums of x[0..1][0..1] = 14, x[0..1][1..3] = 30,
    // x[1..3][0..1] = 57, x[1..3][1..3] = 99.
    const y = k.conv2d(x, tensor([1, 1, 3, 3], new Array(9).fill(1)), undefined, convAttrs([2, 2], [1, 1, 0, 0]));
    expectValues(y, [1, 1, 2, 2], [14, 30, 57, 99]);
  });

  it('conv2d: 2×2 ones, dilation 2', () => {
    // out[0][0] = x[0][0] + x[0][2] + x[2][0] + x[2][2] = 1 + 3 + 11 + 13 = 28; +4 per column, +20 per row.
    const y = k.conv2d(counting(5, 5), tensor([1, 1, 2, 2], [1, 1, 1, 1]), undefined, convAttrs([1, 1], [0, 0, 0, 0], [2, 2]));
    expectValues(y, [1, 1, 3, 3], [28, 32, 36, 48, 52, 56, 68, 72, 76]);
  });

  it('conv2d: groups 2 scales each channel by its own 1×1 weight', () => {
    const y = k.conv2d(
      tensor([1, 2, 1, 2], [1, 2, 3, 4]),
      tensor([2, 1, 1, 1], [10, -1]),
      undefined,
      convAttrs([1, 1], [0, 0, 0, 0], [1, 1], 2),
    );
    expectValues(y, [1, 2, 1, 2], [10, 20, -3, -4]);
  });

  it('conv2dBackpropInput: each dy value spreads over its own 2×2 block times the kernel', () => {
    const dx = k.conv2dBackpropInput(
      tensor([1, 1, 2, 2], [1, 2, 3, 4]),
      tensor([1, 1, 2, 2], [1, 2, 3, 4]),
      [4, 4],
      convAttrs([2, 2], [0, 0, 0, 0]),
    );
    expectValues(dx, [1, 1, 4, 4], [1, 2, 2, 4, 3, 4, 6, 8, 3, 6, 4, 8, 9, 12, 12, 16]);
  });

  it('conv2dBackpropInput leaves zeros where a stride-2 conv of a 5×5 input never reads', () => {
    // Outputs read rows/cols 0..3 only, so row 4 and column 4 get no gradient.
    const dx = k.conv2dBackpropInput(
      tensor([1, 1, 2, 2], [1, 1, 1, 1]),
      tensor([1, 1, 2, 2], [1, 1, 1, 1]),
      [5, 5],
      convAttrs([2, 2], [0, 0, 0, 0]),
    );
    expectValues(dx, [1, 1, 5, 5], [1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  });

  it('conv2dBackpropFilter: with dy = 1, each tap sums the inputs it reads', () => {
    // Tap (0,0) reads x[0][0] + x[0][2] + x[2][0] + x[2][2] = 1 + 3 + 9 + 11 = 24, and so on.
    const dw = k.conv2dBackpropFilter(x, tensor([1, 1, 2, 2], [1, 1, 1, 1]), [1, 1, 2, 2], convAttrs([2, 2], [0, 0, 0, 0]));
    expectValues(dw, [1, 1, 2, 2], [24, 28, 40, 44]);
  });
});

describe('reference pool kernels on hand-computed examples', () => {
  const x = counting(4, 4);
  const window = { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } as const;

  it('avgPool divides by the valid count, or by the full window with count_include_pad', () => {
    // Window sums are 14, 30, 57, 99 over 4, 6, 6, 9 real inputs.
    expectValues(k.avgPool(x, { ...window, countIncludePad: false }), [1, 1, 2, 2], [14 / 4, 30 / 6, 57 / 6, 99 / 9]);
    expectValues(k.avgPool(x, { ...window, countIncludePad: true }), [1, 1, 2, 2], [14 / 9, 30 / 9, 57 / 9, 99 / 9]);
  });

  it('avgPoolBackprop spreads each gradient over its window with the same divisor', () => {
    const dx = k.avgPoolBackprop(tensor([1, 1, 2, 2], [4, 0, 0, 0]), [4, 4], { ...window, countIncludePad: false });
    expectValues(dx, [1, 1, 4, 4], [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('maxPool treats padding as −∞', () => {
    const negative = tensor(
      x.shape,
      Array.from(x.data, (v) => -v),
    );
    expectValues(k.maxPool(negative, window), [1, 1, 2, 2], [-1, -2, -5, -6]);
  });

  it('maxPoolJvp and maxPoolBackprop use the first maximum of each window', () => {
    const ties = tensor([1, 1, 3, 3], [0, 1, 1, 1, 1, 0, 0, 0, 0]);
    const attrs = { kernel: [2, 2], strides: [1, 1], pads: [0, 0, 0, 0] } as const;
    // First maxima, row-major within each window: (0,1), (0,1), (1,0), (1,1).
    expectValues(k.maxPool(ties, attrs), [1, 1, 2, 2], [1, 1, 1, 1]);
    expectValues(k.maxPoolJvp(ties, counting(3, 3), attrs), [1, 1, 2, 2], [2, 2, 4, 5]);
    expectValues(k.maxPoolBackprop(ties, tensor([1, 1, 2, 2], [1, 2, 3, 4]), attrs), [1, 1, 3, 3], [0, 3, 0, 3, 4, 0, 0, 0, 0]);
  });
});

describe('reference structural kernels on hand-computed examples', () => {
  const a = tensor([2, 2], [1, 2, 3, 4]);
  const b = tensor([2, 2], [5, 6, 7, 8]);

  it('broadcasts like NumPy', () => {
    expectValues(k.add(tensor([2, 1], [1, 2]), tensor([3], [10, 20, 30])), [2, 3], [11, 21, 31, 12, 22, 32]);
    expectValues(k.greater(tensor([3], [1, 2, 3]), k.scalar(2)), [3], [0, 0, 1]);
  });

  it('matMul honours both transpose flags', () => {
    expectValues(k.matMul(a, b, false, false), [2, 2], [19, 22, 43, 50]);
    expectValues(k.matMul(a, b, true, false), [2, 2], [26, 30, 38, 44]);
    expectValues(k.matMul(a, b, false, true), [2, 2], [17, 23, 39, 53]);
    expectValues(k.matMul(a, b, true, true), [2, 2], [23, 31, 34, 46]);
  });

  it('slices with a step and an end past the axis, pads over all axes, reduces with keepDims', () => {
    const ten = tensor(
      [10],
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    expectValues(k.slice(ten, [1], [100], [3]), [3], [2, 5, 8]);
    expectValues(k.pad(a, [1, 0, 0, 1]), [3, 3], [0, 0, 0, 1, 2, 0, 3, 4, 0]);
    expectValues(k.sum(tensor([2, 3], [1, 2, 3, 4, 5, 6]), [1], true), [2, 1], [6, 15]);
    expectValues(k.max(tensor([2, 3], [1, 5, 3, 4, 2, 6]), [0], false), [3], [4, 5, 6]);
    expectValues(k.transpose(tensor([2, 3], [1, 2, 3, 4, 5, 6]), [1, 0]), [3, 2], [1, 4, 2, 5, 3, 6]);
  });

  it('stores [N, C, H, W] with C a multiple of 16 as [N, C/16, H, W, 16], everything else row-major, and reads it back', () => {
    const [n, c, h, w] = [2, 32, 2, 3];
    const values = Array.from({ length: n * c * h * w }, (_, i) => i);
    const x = tensor([n, c, h, w], values);
    // Element (b, ch, y, x) of the logical value sits at [b][ch / 16][y][x][ch % 16] of the stored one.
    const expected = Array.from({ length: values.length }, (_, i) => {
      const lane = i % 16;
      const col = Math.floor(i / 16) % w;
      const row = Math.floor(i / (16 * w)) % h;
      const block = Math.floor(i / (16 * w * h)) % (c / 16);
      const b = Math.floor(i / (c * h * w));
      return values[((b * c + block * 16 + lane) * h + row) * w + col];
    });
    expectValues(k.toStorageOrder(x), [n, c, h, w], expected);
    expectValues(k.fromStorageOrder(tensor([n, c, h, w], expected)), [n, c, h, w], values);
    for (const shape of [
      [2, 8, 2, 3],
      [2, 32, 1, 1],
      [4, 32],
    ]) {
      const plain = tensor(
        shape,
        Array.from({ length: shape.reduce((a, d) => a * d, 1) }, (_, i) => i),
      );
      expectValues(k.toStorageOrder(plain), shape, [...plain.data]);
    }
  });

  it('memoises constant() per HostTensor object', () => {
    const value = hostTensor([2], [1, 2]);
    expect(k.constant(value)).toBe(k.constant(value));
    expect(k.constant(hostTensor([2], [1, 2]))).not.toBe(k.constant(value));
  });
});

/** conv2d straight from its definition, zero outside the input: an independent check of the tap walk. */
function convByDefinition(x: ReferenceTensor, w: ReferenceTensor, bias: ReferenceTensor, attrs: Conv2DAttrs): number[] {
  const [n, c, h, width] = x.shape;
  const [o, inPerGroup, kh, kw] = w.shape;
  const ho = windowedSize(h, kh, attrs.strides[0], attrs.pads[0], attrs.pads[2], attrs.dilations[0]);
  const wo = windowedSize(width, kw, attrs.strides[1], attrs.pads[1], attrs.pads[3], attrs.dilations[1]);
  const at = (b: number, ch: number, row: number, col: number) =>
    row < 0 || row >= h || col < 0 || col >= width ? 0 : x.data[((b * c + ch) * h + row) * width + col];
  const out: number[] = [];
  for (let b = 0; b < n; b++)
    for (let oc = 0; oc < o; oc++)
      for (let oy = 0; oy < ho; oy++)
        for (let ox = 0; ox < wo; ox++) {
          let total = bias.data[oc];
          const group = Math.floor(oc / (o / attrs.groups));
          for (let ci = 0; ci < inPerGroup; ci++)
            for (let ky = 0; ky < kh; ky++)
              for (let kx = 0; kx < kw; kx++) {
                const row = oy * attrs.strides[0] - attrs.pads[0] + ky * attrs.dilations[0];
                const col = ox * attrs.strides[1] - attrs.pads[1] + kx * attrs.dilations[1];
                total += w.data[((oc * inPerGroup + ci) * kh + ky) * kw + kx] * at(b, group * inPerGroup + ci, row, col);
              }
          out.push(total);
        }
  return out;
}

describe('reference conv2d against its definition', () => {
  const rng = new Rng(99);
  const random = (shape: number[]): ReferenceTensor => ({ shape, data: Float64Array.from(uniformTensor(rng, shape).data) });
  const cases: [string, number[], number[], Conv2DAttrs][] = [
    ['stride 2, asymmetric pads', [2, 3, 7, 6], [4, 3, 3, 3], convAttrs([2, 2], [0, 1, 1, 2])],
    ['dilation 2, strides [1, 2]', [1, 2, 9, 8], [3, 2, 3, 2], convAttrs([1, 2], [2, 1, 2, 0], [2, 2])],
    ['groups 2', [2, 4, 6, 5], [6, 2, 3, 3], convAttrs([1, 1], [1, 1, 1, 1], [1, 1], 2)],
    ['depthwise, stride 2', [2, 3, 7, 7], [3, 1, 3, 3], convAttrs([2, 2], [1, 1, 1, 1], [1, 1], 3)],
    ['pads larger than the kernel reach', [1, 2, 4, 4], [2, 2, 2, 2], convAttrs([3, 1], [3, 2, 2, 3], [1, 2])],
  ];
  for (const [name, xShape, wShape, attrs] of cases) {
    it(name, () => {
      const x = random(xShape);
      const w = random(wShape);
      const bias = random([wShape[0]]);
      const error = relativeError(k.conv2d(x, w, bias, attrs).data, convByDefinition(x, w, bias, attrs));
      expect(error.relative).toBeLessThan(1e-14);
    });
  }
});

describe('reference kernels reject bad input with a message that names the problem', () => {
  it.each([
    ['broadcast', () => k.add(tensor([2, 3], [1, 2, 3, 4, 5, 6]), tensor([2], [1, 2])), /add: shapes \[2, 3\] and \[2\] do not broadcast/],
    ['reshape', () => k.reshape(tensor([2, 3], [1, 2, 3, 4, 5, 6]), [4, -1]), /reshape: cannot reshape \[2, 3\] \(6 values\) to \[4, -1\]/],
    ['matMul', () => k.matMul(tensor([2, 3], [1, 2, 3, 4, 5, 6]), tensor([2, 3], [1, 2, 3, 4, 5, 6]), false, false), /inner sizes 3 and 2/],
    [
      'groups',
      () => k.conv2d(counting(4, 4), tensor([2, 1, 1, 1], [1, 1]), undefined, convAttrs([1, 1], [0, 0, 0, 0], [1, 1], 2)),
      /do not fit groups=2/,
    ],
    [
      'conv gradient shape',
      () => k.conv2dBackpropFilter(counting(4, 4), counting(3, 3), [1, 1, 2, 2], convAttrs([2, 2], [0, 0, 0, 0])),
      /expected \[1, 1, 2, 2\]/,
    ],
    [
      'pool in padding',
      () => k.maxPool(counting(2, 2), { kernel: [2, 2], strides: [1, 1], pads: [2, 0, 0, 0] }),
      /window \(0, 0\) lies entirely in the padding/,
    ],
    ['reduction axis', () => k.sum(counting(2, 2), [4], false), /sum: axis 4 is not an axis/],
  ])('%s', (_, run, message) => {
    expect(run).toThrow(message);
  });
});

/** A plugin as a user would write one: four kernels over plain arrays. */
interface ListTensor {
  readonly shape: readonly number[];
  readonly values: readonly number[];
}

function elementwise(a: ListTensor, b: ListTensor, op: (x: number, y: number) => number): ListTensor {
  if (!sameShape(a.shape, b.shape) && b.shape.length > 0) throw new Error('the list backend only broadcasts scalars');
  return { shape: a.shape, values: a.values.map((v, i) => op(v, b.values[b.shape.length > 0 ? i : 0])) };
}

const listPlugin: BackendPlugin = {
  name: 'list',
  priority: 5,
  create: async () =>
    eagerBackend<ListTensor>({
      name: 'list-js',
      kernels: {
        shape: (x) => x.shape,
        scalar: (value) => ({ shape: [], values: [value] }),
        add: (a, b) => elementwise(a, b, (x, y) => x + y),
        mul: (a, b) => elementwise(a, b, (x, y) => x * y),
      },
      upload: (value) => ({ shape: value.shape, values: Array.from(value.data) }),
      download: async (x) => hostTensor(x.shape, x.values),
      tidy: (fn) => fn(),
      dispose() {},
    }),
};

describe('backend plugins', () => {
  const affine: Program = (kernels, { x }) => ({ y: kernels.add(kernels.mul(x, kernels.scalar(2)), kernels.scalar(1)) });
  const exponential: Program = (kernels, { x }) => ({ y: kernels.exp(x) });
  const input = { x: hostTensor([3], [1, 2, 3]) };

  it('a user plugin registered on a child container is resolved by priority and runs programs', async () => {
    const scope = container.createChildContainer();
    registerPlugin(corePlugin, { container: scope });
    registerPlugin({ name: 'list-backend', backends: [listPlugin] }, { container: scope });
    expect(registeredBackends(scope).map((p) => p.name)).toEqual(['list', 'js']);
    expect(registeredBackends().map((p) => p.name)).not.toContain('list');

    const backend = await resolveBackend(undefined, scope);
    expect(backend.name).toBe('list-js');
    const program = await backend.compile({ program: affine, inputs: { x: [3] }, outputs: { y: [3] } });
    expect(Array.from((await program.run(input)).y.data)).toEqual([3, 5, 7]);
    expect((await resolveBackend('js', scope)).name).toBe('js-reference');
  });

  it('a kernel the plugin lacks raises MissingKernelError naming it', async () => {
    const program = await (await listPlugin.create()).compile({ program: exponential, inputs: { x: [3] }, outputs: { y: [3] } });
    const failure = program.run(input);
    await expect(failure).rejects.toThrow(MissingKernelError);
    await expect(failure).rejects.toMatchObject({ backend: 'list-js', kernel: 'exp', message: expect.stringContaining("no kernel 'exp'") });
  });

  it('the reference plugin provides every kernel of the contract', () => {
    const kernels = referenceRuntime().kernels;
    expect(KERNEL_NAMES.filter((name) => typeof kernels[name] !== 'function')).toEqual([]);
  });
});

/** The reference backend with some kernels replaced, to check that the harnesses notice. */
function mutated(overrides: Partial<Kernels<ReferenceTensor>>): Backend {
  const runtime = referenceRuntime();
  return eagerBackend({ ...runtime, name: 'mutated', kernels: { ...runtime.kernels, ...overrides } });
}

describe('the backend-neutral harnesses', () => {
  const reference = createReferenceBackend();
  const conformanceCase = (name: string) => {
    const found = kernelConformanceCases().find((c) => c.name.startsWith(name));
    if (!found) throw new Error(`no conformance case '${name}'`);
    return found;
  };
  const ruleCase = (name: string) => {
    const found = ruleCases().find((c) => c.name.startsWith(name));
    if (!found) throw new Error(`no rule case '${name}'`);
    return found;
  };
  /**
   * maxPoolJvp that reads each window's LAST maximum: the first maximum of the spatially reversed
   * input is the last of the original. (Exact for stride-1 unpadded windows, as in the case used.)
   */
  const lastMaximumJvp: Kernels<ReferenceTensor>['maxPoolJvp'] = (x, dx, attrs) => reversed(k.maxPoolJvp(reversed(x), reversed(dx), attrs));

  it('conformance exercises every kernel of the contract', async () => {
    const used = new Set<string>();
    for (const kernelCase of kernelConformanceCases()) {
      const recording: Program = (kernels, inputs) =>
        kernelCase.program(
          new Proxy(kernels, {
            get(target, name, receiver) {
              used.add(String(name));
              return Reflect.get(target, name, receiver);
            },
          }),
          inputs,
        );
      await (await reference.compile({ ...signedOnReference(kernelCase.program, kernelCase.inputs), program: recording })).run(
        kernelCase.inputs,
      );
    }
    expect(KERNEL_NAMES.filter((name) => !used.has(name))).toEqual([]);
  });

  it('conformance flags a maxPoolJvp that takes the last of tied maxima', async () => {
    const problems = await compareKernelCase(
      conformanceCase('maxPool 2×2, stride 1, with ties'),
      mutated({ maxPoolJvp: lastMaximumJvp }),
      reference,
      1e-3,
    );
    expect(problems).toEqual([expect.stringMatching(/^maxPoolJvp: relative error/)]);
  });

  it('conformance flags a maxPool that pads with zeros', async () => {
    const zeroPadded: Kernels<ReferenceTensor>['maxPool'] = (x, attrs) => {
      const [top, left, bottom, right] = attrs.pads;
      return k.maxPool(k.pad(x, [0, 0, top, left, 0, 0, bottom, right]), { ...attrs, pads: [0, 0, 0, 0] });
    };
    const problems = await compareKernelCase(
      conformanceCase('maxPool 3×3, stride 2, pads 1'),
      mutated({ maxPool: zeroPadded }),
      reference,
      1e-3,
    );
    expect(problems).toEqual([expect.stringMatching(/^maxPool: relative error/)]);
  });

  it('rule checks flag a conv2dBackpropInput that is not the transpose of conv2d', async () => {
    // The classic slip: transposing the conv without rotating the kernel by 180°.
    const unrotated: Kernels<ReferenceTensor>['conv2dBackpropInput'] = (dy, w, size, attrs) =>
      k.conv2dBackpropInput(dy, reversed(w), size, attrs);
    const gaps = await adjointGaps(mutated({ conv2dBackpropInput: unrotated }), ruleCase('Conv2D 3×2, dilation 2'));
    const bySlot = Object.fromEntries(gaps.map((g) => [g.slot, g.gap]));
    // A wrong transpose leaves a gap of order 1/√(output size) of the normalised product (here ~4e-3).
    expect(bySlot.x).toBeGreaterThan(1e-3);
    expect(bySlot.weight).toBeLessThan(1e-6);
  });

  it('rule checks flag a maxPoolJvp that reads the window corner instead of its maximum', async () => {
    // With x taken as all zeros, every window's first maximum is its first element.
    const corner: Kernels<ReferenceTensor>['maxPoolJvp'] = (x, dx, attrs) =>
      k.maxPoolJvp(tensor(x.shape, new Array(x.data.length).fill(0)), dx, attrs);
    const { jvp, finiteDifference } = await jvpAndFiniteDifferences(
      mutated({ maxPoolJvp: corner }),
      ruleCase('MaxPool 2×2, stride 2'),
      1e-3,
    );
    expect(relativeError(jvp.data, finiteDifference.data).relative).toBeGreaterThan(0.1);
  });
});

/** Reverses the last two axes of a 4-D tensor (an image's rows and columns, or a filter's taps). */
function reversed(x: ReferenceTensor): ReferenceTensor {
  const [n, c, h, w] = x.shape;
  const data = new Float64Array(x.data.length);
  for (let p = 0; p < n * c; p++)
    for (let r = 0; r < h; r++)
      for (let col = 0; col < w; col++) data[(p * h + r) * w + col] = x.data[(p * h + (h - 1 - r)) * w + (w - 1 - col)];
  return { shape: x.shape, data };
}

describeFeedChecks('the reference backend', () => createReferenceBackend());
