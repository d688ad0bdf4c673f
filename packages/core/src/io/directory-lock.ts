import { rmSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

/** The file that marks a directory as in use by one gradfeat process. */
export const LOCK_FILE = '.gradfeat.lock';

/** A lock file whose contents are still unreadable after this long was left by a process killed while writing it. */
const HALF_WRITTEN_GRACE_MS = 60_000;

interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly started: string;
  readonly command: string;
}

/** A directory held by this process until `release`. */
export interface DirectoryLock {
  readonly directory: string;
  /** Removes the lock file (if it is still this process's). */
  release(): Promise<void>;
}

/**
 * Takes `directory` (created if needed) for this process until `release`, so that two runs never
 * write into it at once: the lock file is created exclusively and names the process. A directory
 * another live process holds is refused with an error naming that process; a lock left by a process
 * that no longer runs on this machine (killed with SIGKILL, say) is taken over, so a killed run resumes.
 */
export async function lockDirectory(directory: string, command: string): Promise<DirectoryLock> {
  const dir = resolve(directory);
  const path = join(dir, LOCK_FILE);
  await mkdir(dir, { recursive: true });
  const owner: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command };
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(JSON.stringify(owner));
      } finally {
        await handle.close();
      }
      return heldLock(dir, path, owner);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readOwner(path);
    if (holder === 'gone') continue;
    if (holder === 'being written') throw new Error(`${dir}: another gradfeat process is taking it this moment; try again once it is done`);
    if (holder === 'stale' || (holder.host === hostname() && !isRunning(holder.pid))) {
      await rm(path, { force: true });
      continue;
    }
    const where = holder.host === hostname() ? 'on this machine' : `on ${holder.host}`;
    throw new Error(
      `${dir}: in use by process ${holder.pid} (${holder.command}, started ${holder.started}) ${where}; wait for it to finish or choose another directory (if that process is gone, delete ${path})`,
    );
  }
}

function heldLock(directory: string, path: string, owner: LockOwner): DirectoryLock {
  let held = true;
  // A process that exits without releasing (process.exit, an uncaught error) still removes its lock.
  const onExit = () => {
    if (held) rmSync(path, { force: true });
  };
  process.once('exit', onExit);
  return {
    directory,
    async release() {
      if (!held) return;
      held = false;
      process.removeListener('exit', onExit);
      const holder = await readOwner(path);
      if (typeof holder === 'object' && holder.pid === owner.pid && holder.started === owner.started) await rm(path, { force: true });
    },
  };
}

/**
 * The lock's owner; 'gone' when the file disappeared meanwhile; 'being written' while its contents are
 * not readable yet, 'stale' when they stayed unreadable past the grace period.
 */
async function readOwner(path: string): Promise<LockOwner | 'gone' | 'being written' | 'stale'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    if (Number.isInteger(owner.pid) && typeof owner.host === 'string') return owner;
  } catch {
    // Being written, or left half-written: decided by its age below.
  }
  const age = Date.now() - (await stat(path)).mtimeMs;
  return age > HALF_WRITTEN_GRACE_MS ? 'stale' : 'being written';
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
