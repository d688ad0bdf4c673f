/**
 * Entry points the hostile-file tests call in a child process (test-support/isolated.ts), where a
 * hang or a runaway read cannot take the test runner down.
 */
import { loadFixture } from '../src/fixtures/jvp-fixture.js';

/** Loads a fixture folder and reads every tensor its manifest lists. */
export async function readFixture(dir: string) {
  const fixture = await loadFixture(dir);
  return Object.keys(fixture.manifest.tensors).map((name) => fixture.tensor(name).data.length);
}
