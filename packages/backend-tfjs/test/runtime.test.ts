import { createRequire } from 'node:module';
import { registeredBackends, registerPlugin, resolveBackend } from '@gradfeat/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { createTfjsBackend, RUNTIME_ENV_VAR, TFJS_RUNTIMES, type TfjsRuntime, tfjsBackendPlugin, tfjsPlugin } from '../src/index.js';

/** Whether an optional peer can be resolved from this package (neither can be installed on gradfeat's CI). */
function installed(packageName: string): boolean {
  try {
    createRequire(import.meta.url).resolve(packageName);
    return true;
  } catch {
    return false;
  }
}

const hasTfjsNode = installed('@tensorflow/tfjs-node');
const hasTfjsNodeGpu = installed('@tensorflow/tfjs-node-gpu');

describe('TF.js runtime selection', () => {
  const savedEnv = process.env[RUNTIME_ENV_VAR];
  afterEach(() => {
    if (savedEnv === undefined) delete process.env[RUNTIME_ENV_VAR];
    else process.env[RUNTIME_ENV_VAR] = savedEnv;
  });

  it("forcing 'cpu' gives the pure-JS backend and makes it TF.js's active backend", async () => {
    const backend = await createTfjsBackend({ runtime: 'cpu' });
    expect(backend.name).toBe('tfjs-cpu');
    expect(backend.runtime).toBe('cpu');
    expect(backend.skipped).toEqual([]);
    expect(tf.getBackend()).toBe('cpu');
  });

  it("forcing 'wasm' loads the binaries from the package and reports SIMD and threads", async () => {
    const backend = await createTfjsBackend({ runtime: 'wasm' });
    expect(backend.name).toBe('tfjs-wasm');
    expect(tf.getBackend()).toBe('wasm');
    // Node's WebAssembly has SIMD; the threaded build either runs with 2 threads or says why not.
    expect(backend.detail).toMatch(
      /^(threaded SIMD, 2 threads|SIMD, 1 thread \(the threaded-SIMD build failed to start under Node with 2 threads\))$/,
    );
  });

  it.runIf(!hasTfjsNode)("forcing 'node' when @tensorflow/tfjs-node is not installed fails with what to install", async () => {
    await expect(createTfjsBackend({ runtime: 'node' })).rejects.toThrow(
      "TF.js runtime 'node' was requested by createTfjsBackend({ runtime }) but cannot start: @tensorflow/tfjs-node is not installed (an optional peer: `npm install @tensorflow/tfjs-node`, which downloads libtensorflow)",
    );
  });

  it.runIf(!hasTfjsNodeGpu)(`forcing 'node-gpu' through ${RUNTIME_ENV_VAR} names the variable and the missing package`, async () => {
    process.env[RUNTIME_ENV_VAR] = 'node-gpu';
    await expect(createTfjsBackend()).rejects.toThrow(
      `TF.js runtime 'node-gpu' was requested by ${RUNTIME_ENV_VAR} but cannot start: @tensorflow/tfjs-node-gpu is not installed`,
    );
  });

  it(`${RUNTIME_ENV_VAR} forces a runtime, and the option overrides it`, async () => {
    process.env[RUNTIME_ENV_VAR] = 'cpu';
    expect((await createTfjsBackend()).name).toBe('tfjs-cpu');
    expect((await createTfjsBackend({ runtime: 'wasm' })).name).toBe('tfjs-wasm');
  });

  it(`an unknown ${RUNTIME_ENV_VAR} value is an error listing the runtimes`, async () => {
    process.env[RUNTIME_ENV_VAR] = 'tpu';
    await expect(createTfjsBackend()).rejects.toThrow(`${RUNTIME_ENV_VAR} is 'tpu'; expected one of node-gpu, node, wasm, cpu`);
  });

  it('an unknown runtime option from JavaScript is an error listing the runtimes', async () => {
    await expect(createTfjsBackend({ runtime: 'gpu' as TfjsRuntime })).rejects.toThrow(
      "createTfjsBackend({ runtime }) is 'gpu'; expected one of node-gpu, node, wasm, cpu",
    );
  });

  it('without a request, the first runtime that starts is chosen and every earlier one says why it was skipped', async () => {
    delete process.env[RUNTIME_ENV_VAR];
    const backend = await createTfjsBackend();
    const chosen = TFJS_RUNTIMES.indexOf(backend.runtime);
    expect(backend.skipped.map((s) => s.runtime)).toEqual(TFJS_RUNTIMES.slice(0, chosen));
    for (const { runtime, reason } of backend.skipped) {
      const packageName = runtime === 'node' ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-node-gpu';
      if (!installed(packageName))
        expect(reason).toBe(
          `${packageName} is not installed (an optional peer: \`npm install ${packageName}\`, which downloads libtensorflow)`,
        );
    }
    if (!hasTfjsNode && !hasTfjsNodeGpu) expect(backend.runtime).toBe('wasm');
  });

  it("registers as the 'tfjs' plugin with priority 10, which resolveBackend can start", async () => {
    registerPlugin(tfjsPlugin);
    registerPlugin(tfjsPlugin);
    const plugins = registeredBackends().filter((plugin) => plugin.name === 'tfjs');
    expect(plugins).toEqual([tfjsBackendPlugin]);
    expect(tfjsBackendPlugin.priority).toBe(10);
    expect((await resolveBackend('tfjs')).name).toMatch(/^tfjs-(node-gpu|node|wasm|cpu)$/);
  });
});
