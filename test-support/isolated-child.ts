/**
 * The child side of `isolated.ts`: calls exports of one module on the parent's behalf, so that a
 * native crash, a hang or a runaway allocation in the code under test ends this process, not the
 * test runner. Each answer carries how long the call took and how far it raised the peak memory.
 */
import { pathToFileURL } from 'node:url';
import type { CallOutcome, CallRequest, ThrownError } from './isolated.js';

function describeError(error: unknown): ThrownError {
  const causes: { name: string; message: string }[] = [];
  for (let cause = (error as Error)?.cause; cause instanceof Error; cause = cause.cause)
    causes.push({ name: cause.name, message: cause.message });
  const { name = 'thrown value', message = String(error), path } = (error ?? {}) as Error & { path?: unknown };
  return { name, message, path: typeof path === 'string' ? path : undefined, causes };
}

async function call(request: CallRequest): Promise<CallOutcome> {
  const target = (await import(pathToFileURL(request.module).href))[request.exportName];
  if (typeof target !== 'function') throw new Error(`${request.module} has no exported function '${request.exportName}'`);
  const peakBefore = process.resourceUsage().maxRSS * 1024;
  const started = performance.now();
  const measure = () => ({
    ms: performance.now() - started,
    peakGrowthBytes: Math.max(0, process.resourceUsage().maxRSS * 1024 - peakBefore),
  });
  try {
    const value = await target(...request.args);
    return { kind: 'returned', value: JSON.parse(JSON.stringify(value ?? null)), ...measure() };
  } catch (error) {
    return { kind: 'threw', error: describeError(error), ...measure() };
  }
}

process.on('message', (request: CallRequest) => {
  call(request).then(
    (outcome) => process.send?.({ id: request.id, outcome }),
    (error) => process.send?.({ id: request.id, setupError: describeError(error) }),
  );
});
process.send?.({ ready: true });
