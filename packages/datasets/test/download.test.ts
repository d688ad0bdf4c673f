import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCifar } from '../src/cifar.js';
import { downloadCifar, downloadFile } from '../src/download.js';
import { cifarRecords, temporaryDirectory } from './helpers.js';

describe('downloading the CIFAR archive (local server on 127.0.0.1)', () => {
  let root: string;
  let remove: () => Promise<void>;
  let server: Server;
  let baseUrl: string;
  const files = new Map<string, Buffer>();
  const requests: string[] = [];
  const digest = (algorithm: 'md5' | 'sha256', name: string) => createHash(algorithm).update(files.get(name)!).digest('hex');

  beforeAll(async () => {
    ({ path: root, remove } = await temporaryDirectory());
    const source = join(root, 'source');
    await mkdir(join(source, 'cifar-10-batches-bin'), { recursive: true });
    for (let batch = 1; batch <= 5; batch++) {
      await writeFile(
        join(source, 'cifar-10-batches-bin', `data_batch_${batch}.bin`),
        cifarRecords(2, (r) => [batch + r]),
      );
    }
    await writeFile(
      join(source, 'cifar-10-batches-bin', 'test_batch.bin'),
      cifarRecords(3, () => [7]),
    );
    await writeFile(join(source, 'cifar-10-batches-bin', 'batches.meta.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n');
    await mkdir(join(source, 'other'));
    await writeFile(join(source, 'other', 'readme.txt'), 'no CIFAR here');
    await createTar({ gzip: true, file: join(root, 'cifar.tar.gz'), cwd: source }, ['cifar-10-batches-bin']);
    await createTar({ gzip: true, file: join(root, 'other.tar.gz'), cwd: source }, ['other']);
    files.set('/cifar-10-binary.tar.gz', await readFile(join(root, 'cifar.tar.gz')));
    files.set('/other.tar.gz', await readFile(join(root, 'other.tar.gz')));
    server = createServer((request, response) => {
      requests.push(request.url ?? '');
      const body = files.get(request.url ?? '');
      if (!body) {
        response.writeHead(404).end('not here');
        return;
      }
      response.writeHead(200, { 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await remove();
  });

  it('downloads, verifies (sha256) and unpacks the archive, which openCifar then reads; a second call fetches nothing', async () => {
    const destination = join(root, 'data-sha');
    const url = `${baseUrl}/cifar-10-binary.tar.gz`;
    const checksum = { algorithm: 'sha256', digest: digest('sha256', '/cifar-10-binary.tar.gz') } as const;
    const progress: number[] = [];
    const extracted = await downloadCifar('cifar10', destination, { url, checksum, onProgress: (received) => progress.push(received) });
    expect(extracted).toBe(join(destination, 'cifar-10-batches-bin'));
    expect(progress.at(-1)).toBe(files.get('/cifar-10-binary.tar.gz')!.length);
    const train = await openCifar('cifar10', destination);
    expect(train.length).toBe(10);
    expect(train.classNames[9]).toBe('j');
    expect(await train.targets()).toMatchObject({ labels: Int32Array.from([1, 2, 2, 3, 3, 4, 4, 5, 5, 6]) });
    expect((await readdir(destination)).sort()).toEqual(['cifar-10-batches-bin', 'cifar-10-binary.tar.gz']);
    const before = requests.length;
    await downloadCifar('cifar10', destination, { url, checksum });
    expect(requests.length).toBe(before);
  });

  it('reuses an archive already on disk when its md5 matches (upper-case digests accepted)', async () => {
    const destination = join(root, 'data-md5');
    await mkdir(destination);
    await writeFile(join(destination, 'cifar-10-binary.tar.gz'), files.get('/cifar-10-binary.tar.gz')!);
    const before = requests.length;
    const checksum = { algorithm: 'md5', digest: digest('md5', '/cifar-10-binary.tar.gz').toUpperCase() } as const;
    await downloadCifar('cifar10', destination, { url: `${baseUrl}/cifar-10-binary.tar.gz`, checksum });
    expect(requests.length).toBe(before);
    expect((await openCifar('cifar10', destination, { split: 'test' })).length).toBe(3);
  });

  it('refuses a download whose checksum differs and leaves nothing behind', async () => {
    const destination = join(root, 'data-corrupt');
    const wrong = { algorithm: 'md5', digest: '0'.repeat(32) } as const;
    await expect(downloadCifar('cifar10', destination, { url: `${baseUrl}/cifar-10-binary.tar.gz`, checksum: wrong })).rejects.toThrow(
      `download of ${baseUrl}/cifar-10-binary.tar.gz is corrupt: md5 ${digest('md5', '/cifar-10-binary.tar.gz')}, expected ${'0'.repeat(32)}`,
    );
    expect(await readdir(destination)).toEqual([]);
  });

  it('reports HTTP errors and archives without the CIFAR folder', async () => {
    const destination = join(root, 'data-errors');
    await expect(
      downloadFile(`${baseUrl}/missing.tar.gz`, join(root, 'x'), { checksum: { algorithm: 'md5', digest: '' } }),
    ).rejects.toThrow(`cannot download ${baseUrl}/missing.tar.gz: HTTP 404`);
    const checksum = { algorithm: 'sha256', digest: digest('sha256', '/other.tar.gz') } as const;
    await expect(downloadCifar('cifar10', destination, { url: `${baseUrl}/other.tar.gz`, checksum })).rejects.toThrow(
      `${join(destination, 'other.tar.gz')}: does not contain the folder cifar-10-batches-bin/`,
    );
    expect(await readdir(destination)).toEqual(['other.tar.gz']);
  });
});
