import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDirectory } from '../src/index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradfeat-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lockDirectory', () => {
  it('gives a directory to one holder at a time, naming the holder to anyone else, until it is released', async () => {
    const run = join(dir, 'run');
    const lock = await lockDirectory(run, 'gradfeat compare');
    expect(JSON.parse(await readFile(join(run, LOCK_FILE), 'utf8'))).toMatchObject({
      pid: process.pid,
      host: hostname(),
      command: 'gradfeat compare',
    });
    await expect(lockDirectory(run, 'gradfeat train')).rejects.toThrow(
      new RegExp(`^${run}: in use by process ${process.pid} \\(gradfeat compare, started \\S+\\) on this machine; wait for it to finish`),
    );
    await lock.release();
    expect(existsSync(join(run, LOCK_FILE))).toBe(false);
    await (await lockDirectory(run, 'gradfeat train')).release();
  });

  it('takes over the lock of a process that no longer runs (a run killed with SIGKILL)', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: dead, host: hostname(), started: '2020-01-01T00:00:00Z', command: 'gradfeat compare' }),
    );
    const lock = await lockDirectory(dir, 'gradfeat compare --resume');
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  it("refuses another machine's lock (its process cannot be checked from here), and a lock being written", async () => {
    await writeFile(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: 1, host: 'elsewhere', started: '2020-01-01T00:00:00Z', command: 'gradfeat train' }),
    );
    await expect(lockDirectory(dir, 'gradfeat compare')).rejects.toThrow(
      `in use by process 1 (gradfeat train, started 2020-01-01T00:00:00Z) on elsewhere`,
    );
    await writeFile(join(dir, LOCK_FILE), '');
    await expect(lockDirectory(dir, 'gradfeat compare')).rejects.toThrow('another gradfeat process is taking it this moment');
    // Still unreadable a few minutes later: its writer was killed mid-write.
    const past = new Date(Date.now() - 5 * 60_000);
    await utimes(join(dir, LOCK_FILE), past, past);
    await (await lockDirectory(dir, 'gradfeat compare')).release();
  });
});
