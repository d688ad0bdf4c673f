import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A real Redis and real `gradfeat worker` processes on this machine, for the cluster tests and the
 * cluster benchmark: Debian's redis-server on a free loopback port, workers run from source.
 */
export const REDIS_SERVER = '/usr/bin/redis-server';
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** node arguments that run the gradfeat CLI from source. */
export const CLI = ['--conditions=source', '--import', 'tsx', join(repo, 'packages/cli/src/bin.ts')];

export interface LocalRedis {
  readonly url: string;
  stop(): void;
}

/** Starts redis-server on a free port of 127.0.0.1 (no persistence) and waits until it answers. */
export async function startRedis(): Promise<LocalRedis> {
  if (!existsSync(REDIS_SERVER))
    throw new Error(`${REDIS_SERVER} not found: install Debian's redis-server (apt-get install -y redis-server)`);
  const port = await freePort();
  const server = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  await until(() => answersPing(port), 'redis-server to accept connections', 20);
  return { url, stop: () => server.kill('SIGKILL') };
}

/** Whether a Redis on this port answers PING (the protocol's inline form). */
function answersPing(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        done(reply.startsWith('+PONG'));
      }
    });
    socket.on('error', () => done(false));
  });
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

export interface WorkerEvent {
  readonly event: string;
  readonly job?: string;
  readonly id?: string;
  readonly time?: string;
}

export interface WorkerProcess {
  readonly process: ChildProcess;
  /** The JSON events it logged so far (see `gradfeat worker`). */
  events(): WorkerEvent[];
  kill(): void;
}

/** Starts a worker process (node `args`, e.g. CLI + ['worker', '--redis', url]) and keeps its JSON log lines. */
export function spawnWorker(args: readonly string[], env: NodeJS.ProcessEnv): WorkerProcess {
  const child = spawn(process.execPath, args, { cwd: repo, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  });
  return {
    process: child,
    events: () =>
      lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as WorkerEvent];
        } catch {
          return [];
        }
      }),
    kill: () => child.kill('SIGKILL'),
  };
}

/** Polls `condition` every 20 ms until it holds; fails naming `what` after `seconds`. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, seconds = 90): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((wait) => setTimeout(wait, 20));
  }
}
