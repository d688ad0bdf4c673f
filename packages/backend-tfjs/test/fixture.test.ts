import { describeFixtureCheck } from '../../../test-support/fixture-check.js';
import { createTfjsBackend, TFJS_RUNTIMES, type TfjsRuntime } from '../src/index.js';

// Every TF.js runtime that is installed here; the pure-JS cpu runtime is skipped as unusably slow
// for this block's conv backward (see README), and tfjs-node(-gpu) cannot be installed offline.
const installed: TfjsRuntime[] = [];
for (const runtime of TFJS_RUNTIMES.filter((r) => r !== 'cpu')) {
  try {
    await (await createTfjsBackend({ runtime })).dispose?.();
    installed.push(runtime);
  } catch {
    // not installed on this machine
  }
}
for (const runtime of installed) describeFixtureCheck(`TF.js ${runtime}`, () => createTfjsBackend({ runtime }));
