import { ADAM_WASM_BASE64 } from './adam-wasm.js';

/** Adam's hyperparameters for one step, as the update loop in optimisers.ts uses them. */
export interface AdamStep {
  readonly decay: number;
  readonly beta1: number;
  readonly beta2: number;
  /** lr / (1 − β1ᵗ). */
  readonly stepSize: number;
  /** √(1 − β2ᵗ). */
  readonly correction2Root: number;
  readonly epsilon: number;
}

type AdamExport = (
  w: number,
  g: number,
  m: number,
  v: number,
  n: number,
  decay: number,
  beta1: number,
  beta2: number,
  stepSize: number,
  correction2Root: number,
  epsilon: number,
) => void;

/** Values per pass through WebAssembly memory: four arrays of them (256 KB) stay in cache between copy and update. */
const CHUNK = 16384;

interface AdamKernel {
  readonly adam: AdamExport;
  /** w, g, m, v: CHUNK values each, in the module's memory. */
  readonly lanes: readonly [Float32Array, Float32Array, Float32Array, Float32Array];
}

// The core library is typed without DOM or Node globals: the little of WebAssembly's API used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: { memory: { buffer: ArrayBuffer; grow(pages: number): number }; adam: AdamExport } };
};

let kernel: AdamKernel | null | undefined;

/** The module, compiled once; null where WebAssembly SIMD is not available. */
function adamKernel(): AdamKernel | null {
  if (kernel !== undefined) return kernel;
  try {
    const bytes = Uint8Array.from(atob(ADAM_WASM_BASE64), (c) => c.charCodeAt(0));
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    const memory = instance.exports.memory;
    const pages = Math.ceil((4 * CHUNK * 4 - memory.buffer.byteLength) / 65536);
    if (pages > 0) memory.grow(pages);
    const lane = (i: number) => new Float32Array(memory.buffer, i * CHUNK * 4, CHUNK);
    kernel = { adam: instance.exports.adam, lanes: [lane(0), lane(1), lane(2), lane(3)] };
  } catch {
    kernel = null;
  }
  return kernel;
}

/**
 * Adam on the leading values of w, m and v in place, with WebAssembly SIMD (2.3× the JavaScript loop on
 * 68 k values) and the same bits as that loop. Returns how many leading values it updated: a multiple of
 * 4, or 0 where WebAssembly SIMD is unavailable; the caller's loop does the rest.
 */
export function adamLeading(w: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, step: AdamStep): number {
  const simd = adamKernel();
  if (!simd) return 0;
  const done = w.length - (w.length % 4);
  const [wLane, gLane, mLane, vLane] = simd.lanes;
  for (let start = 0; start < done; start += CHUNK) {
    const end = Math.min(start + CHUNK, done);
    wLane.set(w.subarray(start, end));
    gLane.set(grad.subarray(start, end));
    mLane.set(m.subarray(start, end));
    vLane.set(v.subarray(start, end));
    simd.adam(
      wLane.byteOffset,
      gLane.byteOffset,
      mLane.byteOffset,
      vLane.byteOffset,
      end - start,
      step.decay,
      step.beta1,
      step.beta2,
      step.stepSize,
      step.correction2Root,
      step.epsilon,
    );
    const count = end - start;
    w.set(wLane.subarray(0, count), start);
    m.set(mLane.subarray(0, count), start);
    v.set(vLane.subarray(0, count), start);
  }
  return done;
}
