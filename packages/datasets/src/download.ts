import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { x as extractTar } from 'tar';
import { type CifarVariant, cifarArchive } from './cifar.js';
import { DatasetFileError } from './errors.js';
import { isDirectory, isFile, writeFileAtomic } from './files.js';

/** The digest a download must have. */
export interface Checksum {
  readonly algorithm: 'md5' | 'sha256';
  /** Lower- or upper-case hex. */
  readonly digest: string;
}

/** Options of `downloadFile`. */
export interface DownloadOptions {
  readonly checksum: Checksum;
  /** Called as bytes arrive; `total` is undefined when the server does not say. */
  readonly onProgress?: (received: number, total: number | undefined) => void;
}

/**
 * Downloads `url` to `destination`, verifying the checksum before the file appears under its name:
 * a failed or interrupted download leaves nothing behind.
 */
export async function downloadFile(url: string, destination: string, options: DownloadOptions): Promise<void> {
  const response = await fetch(url).catch((error) => {
    throw new Error(`cannot download ${url}: ${(error as Error).message}`, { cause: error });
  });
  if (!response.ok || !response.body) throw new Error(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`);
  const length = Number(response.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? length : undefined;
  const hash = createHash(options.checksum.algorithm);
  const expected = options.checksum.digest.toLowerCase();
  // The checksum is checked after the last chunk and before the atomic rename, so a corrupt or
  // interrupted download never appears under the destination's name.
  async function* verifiedChunks(): AsyncGenerator<Uint8Array> {
    let received = 0;
    for await (const chunk of Readable.fromWeb(response.body as ReadableStream) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      received += chunk.length;
      options.onProgress?.(received, total);
      yield chunk;
    }
    const digest = hash.digest('hex');
    if (digest !== expected) {
      throw new Error(
        `download of ${url} is corrupt: ${options.checksum.algorithm} ${digest}, expected ${expected} (${received} bytes received)`,
      );
    }
  }
  await writeFileAtomic(destination, verifiedChunks());
}

/** Whether the file at `path` has the checksum. */
export async function hasChecksum(path: string, checksum: Checksum): Promise<boolean> {
  const hash = createHash(checksum.algorithm);
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex') === checksum.digest.toLowerCase();
}

/**
 * Fetches and unpacks the official CIFAR binary archive into `directory` (for users with internet),
 * returning the extracted folder, which openCifar reads. Nothing is fetched when that folder exists;
 * an archive already downloaded is reused when its checksum matches. `url`/`checksum` override the
 * official ones (for a mirror).
 */
export async function downloadCifar(
  variant: CifarVariant,
  directory: string,
  options: { readonly url?: string; readonly checksum?: Checksum; readonly onProgress?: DownloadOptions['onProgress'] } = {},
): Promise<string> {
  const archive = cifarArchive(variant);
  const target = join(directory, archive.directory);
  if (await isDirectory(target)) return target;
  await mkdir(directory, { recursive: true });
  const url = options.url ?? archive.url;
  const checksum = options.checksum ?? { algorithm: 'md5', digest: archive.md5 };
  const archivePath = join(directory, basename(new URL(url).pathname));
  if (!((await isFile(archivePath)) && (await hasChecksum(archivePath, checksum)))) {
    await downloadFile(url, archivePath, { checksum, onProgress: options.onProgress });
  }
  // Unpack beside the target and rename, so a half-extracted folder never looks complete.
  const unpacking = await mkdtemp(join(directory, '.unpacking-'));
  try {
    await extractTar({ file: archivePath, cwd: unpacking, strict: true });
    if (!(await isDirectory(join(unpacking, archive.directory)))) {
      throw new DatasetFileError(archivePath, `does not contain the folder ${archive.directory}/`);
    }
    await rename(join(unpacking, archive.directory), target);
  } finally {
    await rm(unpacking, { recursive: true, force: true });
  }
  return target;
}
