import {
  type Backend,
  type BackendPlugin,
  eagerBackend,
  formatShape,
  type GradfeatPlugin,
  type HostTensor,
  hostTensor,
  type Kernels,
  type ReferenceTensor,
  referenceRuntime,
  sizeOf,
} from '@gradfeat/core/engine';

// #region plugin
/** The plugin's tensor handle: whatever its runtime computes on. Here, a shape and a plain array. */
export interface ArrayTensor {
  readonly shape: readonly number[];
  readonly values: readonly number[];
}

function fromHost(value: HostTensor): ArrayTensor {
  return { shape: value.shape, values: Array.from(value.data) };
}

function unary(x: ArrayTensor, op: (v: number) => number): ArrayTensor {
  return { shape: x.shape, values: x.values.map(op) };
}

/** An elementwise binary kernel with NumPy broadcasting, as the contract requires. */
function binary(kernel: string, a: ArrayTensor, b: ArrayTensor, op: (x: number, y: number) => number): ArrayTensor {
  const rank = Math.max(a.shape.length, b.shape.length);
  const aligned = (shape: readonly number[]) => [...new Array<number>(rank - shape.length).fill(1), ...shape];
  const [shapeA, shapeB] = [aligned(a.shape), aligned(b.shape)];
  const shape = shapeA.map((da, axis) => {
    const db = shapeB[axis];
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${kernel}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not broadcast`);
    }
    return da === 1 ? db : da;
  });
  const values = new Array<number>(sizeOf(shape));
  for (let i = 0; i < values.length; i++) {
    // Walk the output index from the last axis; an operand of size 1 along an axis stays put on it.
    let rest = i;
    let [offsetA, offsetB, strideA, strideB] = [0, 0, 1, 1];
    for (let axis = rank - 1; axis >= 0; axis--) {
      const index = rest % shape[axis];
      rest = Math.floor(rest / shape[axis]);
      if (shapeA[axis] !== 1) offsetA += index * strideA;
      if (shapeB[axis] !== 1) offsetB += index * strideB;
      strideA *= shapeA[axis];
      strideB *= shapeB[axis];
    }
    values[i] = op(a.values[offsetA], b.values[offsetB]);
  }
  return { shape, values };
}

/** The elementwise part of the contract: enough for ReLU, ReLU6, LeakyReLU and Add with their JVP and backward rules. */
const arrayKernels: Partial<Kernels<ArrayTensor>> = {
  shape: (x) => x.shape,
  constant: fromHost,
  scalar: (value) => ({ shape: [], values: [value] }),
  add: (a, b) => binary('add', a, b, (x, y) => x + y),
  sub: (a, b) => binary('sub', a, b, (x, y) => x - y),
  mul: (a, b) => binary('mul', a, b, (x, y) => x * y),
  div: (a, b) => binary('div', a, b, (x, y) => x / y),
  maximum: (a, b) => binary('maximum', a, b, Math.max),
  minimum: (a, b) => binary('minimum', a, b, Math.min),
  greater: (a, b) => binary('greater', a, b, (x, y) => (x > y ? 1 : 0)),
  less: (a, b) => binary('less', a, b, (x, y) => (x < y ? 1 : 0)),
  exp: (x) => unary(x, Math.exp),
  log: (x) => unary(x, Math.log),
  abs: (x) => unary(x, Math.abs),
  sqrt: (x) => unary(x, Math.sqrt),
};

export const arrayBackendPlugin: BackendPlugin = {
  name: 'array',
  // Above the reference backend (0), below TF.js (10) and ONNX Runtime (20).
  priority: 5,
  async create() {
    return eagerBackend<ArrayTensor>({
      name: 'array-js',
      kernels: arrayKernels,
      upload: fromHost,
      download: async (x) => hostTensor(x.shape, x.values),
      // Plain arrays are garbage-collected, so there is nothing to track or free.
      tidy: (fn) => fn(),
      dispose() {},
    });
  },
};

/** The plugin a module exports (as its default export, for `gradfeat --plugin`) and `registerPlugin` takes. */
export const arrayPlugin: GradfeatPlugin = { name: 'array-backend-example', backends: [arrayBackendPlugin] };
// #endregion plugin

// #region swap
/** The reference backend with one kernel replaced: a way to bring up a backend one kernel at a time. */
export function referenceWith(name: string, kernels: Partial<Kernels<ReferenceTensor>>): Backend {
  const runtime = referenceRuntime();
  return eagerBackend({ ...runtime, name, kernels: { ...runtime.kernels, ...kernels } });
}
// #endregion swap
