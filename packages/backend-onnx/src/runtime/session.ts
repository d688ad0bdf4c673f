import type { HostTensor } from '@gradfeat/core/engine';
import type * as Ort from 'onnxruntime-node';
import { loadOnnxRuntime } from './backend.js';
import { readableByOrt } from './compiled-program.js';

/** An .onnx file (e.g. one `gradfeat export` wrote) opened as it is in ONNX Runtime, float32 in and out. */
export interface OnnxModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the model on float32 inputs by input name; outputs by output name. */
  run(inputs: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>>;
  /** Frees the session's native memory. */
  release(): Promise<void>;
}

/** Opens an .onnx file in ONNX Runtime as it is (no import into the IR), with errors that name the file. */
export async function openOnnxModelSession(path: string, options: Ort.InferenceSession.SessionOptions = {}): Promise<OnnxModelSession> {
  const ort = await loadOnnxRuntime();
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, { logSeverityLevel: 3, ...options });
  } catch (error) {
    throw new Error(`${path}: ONNX Runtime cannot open the model (${(error as Error).message})`, { cause: error });
  }
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(inputs) {
      const feeds = Object.fromEntries(
        Object.entries(inputs).map(([name, t]) => [name, new ort.Tensor('float32', readableByOrt(t.data), t.shape)]),
      );
      let results: Ort.InferenceSession.OnnxValueMapType;
      try {
        results = await session.run(feeds);
      } catch (error) {
        throw new Error(`${path}: ${(error as Error).message}`, { cause: error });
      }
      return Object.fromEntries(
        Object.entries(results).map(([name, t]) => [name, { shape: [...t.dims], data: t.data as Float32Array } satisfies HostTensor]),
      );
    },
    release: () => session.release(),
  };
}
