import type { Command } from 'commander';
import { work } from '../cluster.js';
import { integerOption } from '../parse.js';

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(
      'run cache-shard and gradient jobs for coordinators (extract, train or compare with --redis) until stopped; files on shared storage',
    )
    .requiredOption('--redis <url>', 'the Redis the coordinators use, e.g. redis://10.0.0.5:6379')
    .option('--concurrency <n>', 'jobs run at once in this process (default 1)', integerOption('--concurrency', 1))
    .option(
      '--stall-timeout <seconds>',
      'a job whose worker gives no sign of life for this long is given to another worker (default 30)',
      integerOption('--stall-timeout', 1),
    )
    .addHelpText(
      'after',
      '\nExample (on every machine that mounts the shared storage at the same path):\n  gradfeat worker --redis redis://10.0.0.5:6379 --concurrency 1',
    )
    .action(async (options: { redis: string; concurrency?: number; stallTimeout?: number }) => {
      // One JSON line per job event on stderr, for logs and supervisors.
      const log = (event: Readonly<Record<string, unknown>>) =>
        process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
      const worker = await work({ redis: options.redis, concurrency: options.concurrency, stallSeconds: options.stallTimeout, log });
      log({ event: 'ready', redis: options.redis, pid: process.pid });
      await new Promise<void>((stop) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop());
      });
      log({ event: 'stopping', pid: process.pid });
      await worker.close();
    });
}
