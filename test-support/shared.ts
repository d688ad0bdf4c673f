import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

/** `../shared` beside the repository (developers and CI have it; a user's clone does not). */
export const SHARED_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared');

export function sharedPath(...parts: string[]): string {
  return join(SHARED_DIR, ...parts);
}

export const hasShared = existsSync(SHARED_DIR);

/** A describe block that runs only when ../shared exists, and says why it skipped otherwise. */
export function describeWithShared(name: string, body: () => void): void {
  if (hasShared) describe(name, body);
  else describe.skip(`${name} (skipped: ${SHARED_DIR} not found; it holds the real data these tests read)`, body);
}
