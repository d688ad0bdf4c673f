import 'reflect-metadata';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { container } from 'tsyringe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  baseName,
  childPath,
  defaultFiles,
  droppedFiles,
  FileNotFoundError,
  fetchFiles,
  fileSystemFiles,
  registerDefaultFiles,
  siblingPath,
} from '../src/index.js';

const WEIGHT_FILE = { what: 'weight file', folder: "the model's folder" };

describe('paths of model files', () => {
  it('finds a sibling or a child of a file path, a Windows path or a URL', () => {
    expect(siblingPath('/models/net/model.json', 'group1-shard1of1')).toBe('/models/net/group1-shard1of1');
    expect(siblingPath('C:\\models\\net\\model.json', 'metadata.json')).toBe('C:\\models\\net\\metadata.json');
    expect(siblingPath('https://example.org/m/model.json', 'w.bin')).toBe('https://example.org/m/w.bin');
    expect(siblingPath('model.json', 'w.bin')).toBe('w.bin');
    expect(childPath('/models/net', 'model.json')).toBe('/models/net/model.json');
    expect(childPath('/models/net/', 'model.json')).toBe('/models/net/model.json');
    expect(baseName('https://example.org/m/model.json')).toBe('model.json');
  });
});

describe('fileSystemFiles', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gradfeat-files-'));
    await mkdir(join(directory, 'net'));
    await writeFile(join(directory, 'net', 'model.json'), '{}');
  });
  afterAll(() => rm(directory, { recursive: true, force: true }));

  it('reads files, tells folders, and names a missing file with a FileNotFoundError', async () => {
    expect(new TextDecoder().decode(await fileSystemFiles.read(join(directory, 'net', 'model.json')))).toBe('{}');
    expect(await fileSystemFiles.isDirectory(join(directory, 'net'))).toBe(true);
    expect(await fileSystemFiles.isDirectory(join(directory, 'net', 'model.json'))).toBe(false);
    expect(await fileSystemFiles.isDirectory(join(directory, 'absent'))).toBe(false);
    const missing = fileSystemFiles.read(join(directory, 'absent.json'));
    await expect(missing).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(missing).rejects.toThrow(`${join(directory, 'absent.json')} does not exist`);
  });

  it('finds a file beside a model with its size before reading it, and refuses one outside its folder', async () => {
    await writeFile(join(directory, 'net', 'w.bin'), new Uint8Array([1, 2, 3]));
    const model = join(directory, 'net', 'model.json');
    const located = await fileSystemFiles.beside(model, 'w.bin', WEIGHT_FILE);
    expect(located.bytes).toBe(3);
    expect([...(await located.read())]).toEqual([1, 2, 3]);
    await expect(fileSystemFiles.beside(model, '../outside.bin', WEIGHT_FILE)).rejects.toThrow(
      "weight file '../outside.bin' leaves the model's folder",
    );
    await expect(fileSystemFiles.beside(model, 'absent.bin', WEIGHT_FILE)).rejects.toThrow(/weight file '.*absent\.bin' is missing/);
  });

  it('is what importers read through by default in Node, until another source is registered', async () => {
    expect(defaultFiles()).toBe(fileSystemFiles);
    const child = container.createChildContainer();
    expect(defaultFiles(child)).toBe(fileSystemFiles);
    const other = droppedFiles([]);
    registerDefaultFiles(other, child);
    expect(defaultFiles(child)).toBe(other);
    expect(defaultFiles()).toBe(fileSystemFiles);
  });
});

describe('fetchFiles, against an HTTP server on loopback', () => {
  let server: Server;
  let origin: string;
  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === '/net/model.json') response.writeHead(200).end('{"format":"layers-model"}');
      else if (request.url === '/broken') response.writeHead(500, 'Internal Server Error').end();
      else response.writeHead(404).end();
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((closed) => server.close(() => closed())));

  it('reads a path relative to its base, or an absolute URL', async () => {
    const files = fetchFiles(`${origin}/net/`);
    expect(new TextDecoder().decode(await files.read('model.json'))).toBe('{"format":"layers-model"}');
    expect((await files.read(`${origin}/net/model.json`)).byteLength).toBe(25);
    expect(await files.isDirectory('model.json')).toBe(false);
  });

  it('turns a 404 into a FileNotFoundError naming the URL, and another failure into its status', async () => {
    const files = fetchFiles(`${origin}/net/`);
    const missing = files.read('group1-shard1of1');
    await expect(missing).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(missing).rejects.toThrow(`${origin}/net/group1-shard1of1 does not exist`);
    await expect(files.read('/broken')).rejects.toThrow(`${origin}/broken: HTTP 500 Internal Server Error`);
  });

  it('finds a file beside a model by its URL, refuses one that leaves the folder or the origin, and names a missing one', async () => {
    const files = fetchFiles(`${origin}/net/`);
    const located = await files.beside('model.json', 'sub/../model.json', WEIGHT_FILE);
    expect(located.path).toBe(`${origin}/net/model.json`);
    expect(located.bytes).toBeUndefined();
    expect((await located.read()).byteLength).toBe(25);
    await expect(files.beside('model.json', '../broken', WEIGHT_FILE)).rejects.toThrow(
      `weight file '../broken' leaves the model's folder (${origin}/net/)`,
    );
    await expect(files.beside('model.json', 'https://example.org/net/w.bin', WEIGHT_FILE)).rejects.toThrow(/leaves the model's folder/);
    const missing = await files.beside(`${origin}/net/model.json`, 'w.bin', WEIGHT_FILE);
    await expect(missing.read()).rejects.toThrow(`weight file '${origin}/net/w.bin' is missing`);
  });

  it('needs a base address for a relative path where there is no page', async () => {
    await expect(fetchFiles().read('model.json')).rejects.toThrow(
      "'model.json' is not a URL and there is no base address to resolve it against",
    );
  });
});

describe('droppedFiles', () => {
  it('finds a file by its path in a picked folder or by its name', async () => {
    const picked = Object.assign(new File(['{}'], 'model.json'), { webkitRelativePath: 'mobilenet/model.json' });
    const files = droppedFiles([picked, new File([new Uint8Array([1, 2, 3])], 'group1-shard1of1')]);
    expect(new TextDecoder().decode(await files.read('mobilenet/model.json'))).toBe('{}');
    expect([...(await files.read('group1-shard1of1'))]).toEqual([1, 2, 3]);
    // An importer asks for a shard beside model.json: found by its name.
    expect([...(await files.read(siblingPath('mobilenet/model.json', 'group1-shard1of1')))]).toEqual([1, 2, 3]);
    await expect(files.read('metadata.json')).rejects.toBeInstanceOf(FileNotFoundError);
  });

  it('finds a file beside a model with its size, and names one that was not dropped', async () => {
    const files = droppedFiles([new File([new Uint8Array([1, 2, 3])], 'group1-shard1of1')]);
    const located = await files.beside('mobilenet/model.json', 'group1-shard1of1', WEIGHT_FILE);
    expect(located).toMatchObject({ path: 'group1-shard1of1', bytes: 3 });
    expect([...(await located.read())]).toEqual([1, 2, 3]);
    await expect(files.beside('model.json', 'group2-shard1of1', WEIGHT_FILE)).rejects.toThrow(
      "weight file 'group2-shard1of1' is missing (it was not among the dropped files)",
    );
  });
});
