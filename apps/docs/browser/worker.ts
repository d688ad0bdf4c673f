import { fetchFiles } from '@gradfeat/core';
import { BrowserAdapter } from './adapt.js';
import { type FromWorker, type ModelsIndex, PAGE_MODEL, type ToWorker } from './protocol.js';

/** The parts of a dedicated worker's global scope used here (the docs typecheck with the DOM library, not WebWorker's). */
interface WorkerScope {
  onmessage: ((event: { data: ToWorker }) => void) | null;
  postMessage(message: FromWorker, transfer?: ArrayBuffer[]): void;
  readonly crossOriginIsolated?: boolean;
}

const scope = self as unknown as WorkerScope;
const post = (message: FromWorker, transfer: ArrayBuffer[] = []) => scope.postMessage(message, transfer);

let adapter: BrowserAdapter | undefined;

function started(): BrowserAdapter {
  if (!adapter) throw new Error('the model is not loaded yet');
  return adapter;
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'load': {
      const files = fetchFiles(message.models);
      const index: ModelsIndex = JSON.parse(new TextDecoder().decode(await files.read('index.json')));
      const modelJson = `${PAGE_MODEL}/model.json`;
      if (!index.models.includes(PAGE_MODEL)) {
        const reason = index.missing?.[PAGE_MODEL] ?? 'the site was built without it';
        return post({ type: 'model-missing', url: new URL(modelJson, message.models).href, reason });
      }
      adapter = await BrowserAdapter.open(modelJson, files, { webgpu: message.webgpu });
      return post({
        type: 'loaded',
        backend: adapter.backend.name,
        threads: adapter.backend.threads,
        crossOriginIsolated: scope.crossOriginIsolated === true,
        fallbackReason: adapter.backend.fallbackReason,
        cuts: adapter.cuts(),
        weightBytes: adapter.weightBytes,
      });
    }
    case 'train': {
      const begun = performance.now();
      const outcomes = await started().train(message.classes, message.train, message.test, message.settings, {
        onProgress: (phase, done, total) => post({ type: 'progress', phase, done, total }),
        onStep: (method, step, totalSteps, loss) => post({ type: 'step', method, step, totalSteps, loss }),
      });
      return post({ type: 'trained', outcomes, seconds: (performance.now() - begun) / 1000 });
    }
    case 'predict':
      return post({ type: 'prediction', id: message.id, probabilities: await started().predict(message.image) });
    case 'export': {
      const bytes = started().exportOnnx(message.method);
      return post({ type: 'onnx', method: message.method, bytes }, [bytes.buffer as ArrayBuffer]);
    }
  }
}

// One message at a time, in order: a prediction never runs on the backend while a training step does.
let queue = Promise.resolve();
scope.onmessage = ({ data }) => {
  queue = queue.then(() => handle(data)).catch((error: Error) => post({ type: 'error', message: error.message }));
};
