import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

/** A run's own folder, for what its tests build once and share (see docs-site.ts); removed when the run ends. */
export function runFolder(run: string): string {
  return join(tmpdir(), `gradfeat-test-run-${run}`);
}

/** Gives each `vitest run` an id, and its folder. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const run = `${process.pid}-${Date.now()}`;
  project.provide('testRun', run);
  await mkdir(runFolder(run), { recursive: true });
  return () => rm(runFolder(run), { recursive: true, force: true });
}
