import { type Backend, type EagerRuntime, eagerBackend, type HostTensor } from '@gradfeat/core/engine';
import * as tf from '@tensorflow/tfjs-core';
import { tfjsKernels } from './kernels.js';
import { chooseRuntime, type SkippedRuntime, type TfjsRuntime } from './runtime.js';

/** Settings of `createTfjsBackend`. */
export interface TfjsBackendOptions {
  /** Force one runtime; otherwise GRADFEAT_TFJS_RUNTIME, otherwise the fastest that starts. */
  readonly runtime?: TfjsRuntime;
  /**
   * Conv backprops from the runtime's own kernels (plain convs only) instead of forward convs.
   * Defaults to true on tfjs-node, the one runtime whose native backprops are complete and fast.
   */
  readonly nativeConvBackprop?: boolean;
}

/** A backend on TensorFlow.js, with the runtime it started and those it skipped. */
export interface TfjsBackend extends Backend {
  readonly runtime: TfjsRuntime;
  /** How the runtime runs, e.g. 'SIMD, 1 thread'. */
  readonly detail: string;
  /** Runtimes tried before this one, with why each could not start. */
  readonly skipped: readonly SkippedRuntime[];
}

/**
 * Uploads each HostTensor object once. The tensors live outside every tidy until their HostTensor is
 * garbage-collected or the backend is disposed (TF.js memory is not freed by the garbage collector).
 */
class ConstantCache {
  private byHost = new WeakMap<HostTensor, tf.Tensor>();
  private readonly live = new Set<tf.Tensor>();
  private readonly collector = new FinalizationRegistry<tf.Tensor>((tensor) => {
    this.live.delete(tensor);
    tensor.dispose();
  });

  get(value: HostTensor): tf.Tensor {
    let tensor = this.byHost.get(value);
    if (!tensor) {
      // A copy, as on every other runtime: the cpu runtime would otherwise alias the caller's array.
      tensor = tf.keep(tf.tensor(Float32Array.from(value.data), [...value.shape], 'float32'));
      this.byHost.set(value, tensor);
      this.live.add(tensor);
      this.collector.register(value, tensor, tensor);
    }
    return tensor;
  }

  holds(tensor: tf.Tensor): boolean {
    return this.live.has(tensor);
  }

  dispose(): void {
    for (const tensor of this.live) {
      this.collector.unregister(tensor);
      tensor.dispose();
    }
    this.live.clear();
    this.byHost = new WeakMap();
  }
}

/**
 * A gradfeat backend on TF.js. The runtime is chosen as described in the README; its name is
 * 'tfjs-<runtime>', e.g. 'tfjs-wasm'.
 */
export async function createTfjsBackend(options: TfjsBackendOptions = {}): Promise<TfjsBackend> {
  const { started, skipped } = await chooseRuntime(options.runtime);
  const constants = new ConstantCache();
  const runtime: EagerRuntime<tf.Tensor> = {
    name: `tfjs-${started.runtime}`,
    kernels: tfjsKernels((value) => constants.get(value), {
      nativeBackprop: options.nativeConvBackprop ?? started.nativeConvBackprop,
    }),
    upload: (value) => tf.tensor(value.data, [...value.shape], 'float32'),
    // A copy: on the cpu runtime data() is the tensor's own storage, which reshapes and cached constants share.
    download: async (x) => ({ shape: [...x.shape], data: Float32Array.from((await x.data()) as Float32Array) }),
    tidy: (fn) => tf.tidy(fn),
    dispose: (x) => {
      if (!constants.holds(x)) x.dispose();
    },
  };
  const eager = eagerBackend(runtime);
  return {
    name: runtime.name,
    runtime: started.runtime,
    detail: started.detail,
    skipped,
    async compile(program, compileOptions) {
      const compiled = await eager.compile(program, compileOptions);
      return {
        async run(inputs, options) {
          // TF.js has one active backend per process; another gradfeat backend may have switched it.
          if (tf.getBackend() !== started.tfBackend) await tf.setBackend(started.tfBackend);
          return compiled.run(inputs, options);
        },
        dispose: () => compiled.dispose(),
      };
    },
    dispose: () => constants.dispose(),
  };
}
