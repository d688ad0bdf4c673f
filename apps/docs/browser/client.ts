import type { Method } from '@gradfeat/core';
import type { RgbImage } from '@gradfeat/datasets';
import type { FromWorker, LabelledImage, MethodOutcome, PageSettings, ToWorker } from './protocol.js';

type Loaded = Extract<FromWorker, { type: 'loaded' | 'model-missing' }>;
type Reply = Exclude<FromWorker, { type: 'progress' | 'step' | 'error' }>;

export interface TrainListener {
  onProgress(phase: string, done: number, total: number): void;
  onStep(method: Method, step: number, totalSteps: number, loss: number): void;
}

/**
 * The page's side of the worker: requests as promises. The worker answers requests in the order it
 * got them, so each reply (or error) settles the oldest request still waiting.
 */
export class AdaptWorker {
  private readonly waiting: { resolve(reply: Reply): void; reject(error: Error): void }[] = [];
  private listener?: TrainListener;
  private nextPrediction = 0;

  constructor(private readonly worker: Worker) {
    worker.onmessage = ({ data }: MessageEvent<FromWorker>) => {
      if (data.type === 'progress') this.listener?.onProgress(data.phase, data.done, data.total);
      else if (data.type === 'step') this.listener?.onStep(data.method, data.step, data.totalSteps, data.loss);
      else if (data.type === 'error') this.waiting.shift()?.reject(new Error(data.message));
      else this.waiting.shift()?.resolve(data);
    };
    worker.onerror = (event) => {
      for (const request of this.waiting.splice(0)) request.reject(new Error(`the worker failed: ${event.message}`));
    };
  }

  private request(message: ToWorker, transfer: ArrayBuffer[] = []): Promise<Reply> {
    return new Promise((resolve, reject) => {
      // Throws (e.g. for a value that cannot be cloned) before the worker sees anything.
      this.worker.postMessage(message, transfer);
      this.waiting.push({ resolve, reject });
    });
  }

  /** Opens the page's model from the site's models folder (an absolute URL). */
  async load(models: string, webgpu: boolean): Promise<Loaded> {
    return (await this.request({ type: 'load', models, webgpu })) as Loaded;
  }

  async train(
    classes: readonly string[],
    split: { train: readonly LabelledImage[]; test: readonly LabelledImage[] },
    settings: PageSettings,
    listener: TrainListener,
  ): Promise<{ outcomes: readonly MethodOutcome[]; seconds: number }> {
    this.listener = listener;
    try {
      const reply = await this.request({ type: 'train', classes, train: split.train, test: split.test, settings });
      return reply as Extract<Reply, { type: 'trained' }>;
    } finally {
      this.listener = undefined;
    }
  }

  async predict(image: RgbImage): Promise<Partial<Record<Method, number[]>>> {
    const reply = await this.request({ type: 'predict', id: this.nextPrediction++, image });
    return (reply as Extract<Reply, { type: 'prediction' }>).probabilities;
  }

  async exportOnnx(method: Method): Promise<Uint8Array> {
    return ((await this.request({ type: 'export', method })) as Extract<Reply, { type: 'onnx' }>).bytes;
  }

  terminate(): void {
    this.worker.terminate();
  }
}
