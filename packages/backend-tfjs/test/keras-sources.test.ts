import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  createPluginContainer,
  droppedFiles,
  fetchFiles,
  type Graph,
  loadNetwork,
  registeredBackends,
  registeredModelFormats,
  registerPlugin,
} from '@gradfeat/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithShared, sharedPath } from '../../../test-support/shared.js';
import { importKerasModel, kerasModelFormat, kerasPlugin, tfjsPlugin } from '../src/index.js';

const MODEL = sharedPath('models', 'mobilenet_v1_0.25_224');

function expectSameNetwork(ours: Graph, reference: Graph): void {
  expect(ours.nodes).toEqual(reference.nodes);
  expect(ours.outputs).toEqual(reference.outputs);
  expect(ours.metadata?.preprocessing).toEqual(reference.metadata?.preprocessing);
  expect(ours.metadata?.classNames).toEqual(reference.metadata?.classNames);
  expect([...ours.params.keys()]).toEqual([...reference.params.keys()]);
  for (const [key, value] of reference.params) expect(ours.params.get(key)?.data, key).toEqual(value.data);
}

it('kerasPlugin (the format without TF.js, for a page on onnx-web) and tfjsPlugin share the format: both register, it is listed once', () => {
  const container = createPluginContainer();
  registerPlugin(kerasPlugin, { container });
  registerPlugin(tfjsPlugin, { container });
  expect(registeredModelFormats(container)).toEqual([kerasModelFormat]);
  expect(registeredBackends(container).map((backend) => backend.name)).toEqual(['tfjs']);
});

describeWithShared('importKerasModel reads through any FileSource: MobileNet v1 0.25 from ../shared', () => {
  let reference: Graph;
  let server: Server;
  let origin: string;
  beforeAll(async () => {
    reference = await importKerasModel(join(MODEL, 'model.json'));
    // The model's folder over HTTP, as a web server gives it to a page.
    server = createServer(async (request, response) => {
      const file = join(MODEL, (request.url ?? '/').replace(/^\/models\//, ''));
      const bytes = await readFile(file).catch(() => undefined);
      // No keep-alive: a connection the server closes while a slow test runs would fail the next fetch.
      response.writeHead(bytes ? 200 : 404, { Connection: 'close' }).end(bytes);
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((closed) => server.close(() => closed())));

  it('over HTTP with fetchFiles, through loadNetwork, the same network as from the file system', async () => {
    expectSameNetwork(await loadNetwork('model.json', { files: fetchFiles(`${origin}/models/`) }), reference);
  });

  it('from files a user dropped (File objects), the same network', async () => {
    const names = await readdir(MODEL);
    const files = await Promise.all(
      names.filter((name) => name !== 'imagenet').map(async (name) => new File([await readFile(join(MODEL, name))], name)),
    );
    expectSameNetwork(await importKerasModel('model.json', droppedFiles(files)), reference);
  });

  it('names a weight file the server does not have', async () => {
    const withoutShard = fetchFiles(`${origin}/models/`, (url) =>
      url.pathname.endsWith('group3-shard1of1') ? fetch(`${origin}/absent`) : fetch(url),
    );
    await expect(importKerasModel('model.json', withoutShard)).rejects.toThrow(
      new RegExp(
        `weight file '${origin}/models/group3-shard1of1' is missing; the weights conv_dw_1/depthwise_kernel \\[3, 3, 8, 1\\] need 288 bytes`,
      ),
    );
  });
});
