import { parentPort } from 'node:worker_threads';
import { type DecodeJob, runDecodeJob } from './decode-job.js';

/** Worker-thread entry of the DecodePool: one job per message, answered with the same id. */
const port = parentPort;
if (!port) throw new Error('decode-worker must run on a worker thread');
port.on('message', async ({ id, job }: { id: number; job: DecodeJob }) => {
  try {
    const result = await runDecodeJob(job);
    // Rows written into a shared buffer are already where the caller reads them.
    const shared = result.output.buffer instanceof SharedArrayBuffer;
    port.postMessage({ id, result }, shared ? [] : [result.output.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ id, error: (error as Error).stack ?? String(error) });
  }
});
