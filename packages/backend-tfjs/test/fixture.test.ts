import { describeFixtureCheck } from '../../../test-support/fixture-check.js';
import { createTfjsBackend, TFJS_RUNTIMES, type TfjsRuntime } from '../src/index.js';

// Every TF.js runtime installed here (tfjs-node and -node-gpu are optional peers).
const installed: TfjsRuntime[] = [];
for (const runtime of TFJS_RUNTIMES) {
  try {
    await (await createTfjsBackend({ runtime })).dispose?.();
    installed.push(runtime);
  } catch {
    // not installed on this machine
  }
}
for (const runtime of installed) describeFixtureCheck(`TF.js ${runtime}`, () => createTfjsBackend({ runtime }));
