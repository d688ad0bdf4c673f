import type { Reporter, TestModule } from 'vitest/node';
import { hasShared, SHARED_DIR } from './shared.js';

/** Ends the run with a plain 'N passed, N failed, N skipped' line that any CI can read. */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') counts.passed++;
        else if (state === 'failed') counts.failed++;
        else counts.skipped++;
      }
    }
    if (!hasShared) process.stdout.write(`\n${SHARED_DIR} not found: the tests that read its real data and models were skipped\n`);
    process.stdout.write(`\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`);
  }
}
