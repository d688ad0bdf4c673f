/**
 * Entry points the fuzz campaign calls in a child process (test-support/isolated.ts), where a hang or
 * a runaway allocation cannot take the test runner down.
 */
import { loadRunConfig, resolveRunConfig } from '../src/config.js';

/** What `--config FILE` does: read and check the file, then resolve it over the defaults. */
export async function resolveConfigFile(path: string) {
  const config = resolveRunConfig(await loadRunConfig(path), {}, `run config (${path})`);
  return { methods: config.methods, out: config.out };
}
