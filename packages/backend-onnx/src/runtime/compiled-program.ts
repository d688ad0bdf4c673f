import {
  type CompiledProgram,
  checkFeeds,
  checkOutputBuffer,
  type HostTensor,
  type InputSignature,
  type RunOptions,
} from '@gradfeat/core/engine';
// Types only: onnxruntime-node and onnxruntime-web both export onnxruntime-common's InferenceSession and Tensor.
import type { InferenceSession, Tensor } from 'onnxruntime-web';

/** The Tensor class of whichever ONNX Runtime binding runs the session. */
export type OrtTensorClass = new (type: 'float32', data: Float32Array, dims: readonly number[]) => Tensor;

export interface CompiledProgramOptions {
  /**
   * Whether the binding writes outputs into caller-owned tensors passed as pre-allocated outputs
   * (onnxruntime-node does; onnxruntime-web copies CPU tensors into its wasm memory, so it would not
   * fill them): otherwise results are copied into RunOptions.into.
   */
  readonly writesIntoCallerBuffers: boolean;
}

/**
 * onnxruntime-node refuses memory shared between threads (it answers "Invalid argument"), as image
 * batches decoded by worker threads are: such data is copied, into `reuse` when that has its length.
 */
export function readableByOrt(data: Float32Array, reuse?: Float32Array): Float32Array {
  // Pages that are not cross-origin isolated have no SharedArrayBuffer at all.
  if (typeof SharedArrayBuffer === 'undefined' || !(data.buffer instanceof SharedArrayBuffer)) return data;
  const copy = reuse?.length === data.length ? reuse : new Float32Array(data.length);
  copy.set(data);
  return copy;
}

/** The session that runs a batch of a given size. */
export interface SessionSource {
  /** Runs `use` on the session for batches of `batch` rows (0 for a program without a batch axis). */
  use<T>(batch: number, use: (session: InferenceSession) => Promise<T>): Promise<T>;
  release(): void;
}

/** One session for every batch size. */
export function oneSession(session: InferenceSession): SessionSource {
  return { use: (_batch, use) => use(session), release: () => void session.release() };
}

/**
 * A session per batch size, created on the first batch of that size, for programs that lower faster
 * at a fixed batch. The least recently used beyond `capacity` are released when no run holds them.
 */
export function sessionPerBatchSize(create: (batch: number) => Promise<InferenceSession>, capacity = 4): SessionSource {
  const sessions = new Map<number, { session: Promise<InferenceSession>; runs: number }>();
  const release = (session: Promise<InferenceSession>) => void session.then((s) => s.release()).catch(() => undefined);
  const releaseIdle = () => {
    for (const [batch, entry] of sessions) {
      if (sessions.size <= capacity) break;
      if (entry.runs > 0) continue;
      sessions.delete(batch);
      release(entry.session);
    }
  };
  const start = (batch: number) => {
    const session = create(batch);
    // A session that could not be created is not kept, so the next batch of that size tries again.
    session.catch(() => sessions.get(batch)?.session === session && sessions.delete(batch));
    return { session, runs: 0 };
  };
  return {
    async use(batch, use) {
      const entry = sessions.get(batch) ?? start(batch);
      // Map order is recency order: the entry goes to the end.
      sessions.delete(batch);
      sessions.set(batch, entry);
      entry.runs++;
      try {
        return await use(await entry.session);
      } finally {
        entry.runs--;
        releaseIdle();
      }
    },
    release() {
      for (const { session } of sessions.values()) release(session);
      sessions.clear();
    },
  };
}

/** One traced program on ONNX Runtime sessions (of onnxruntime-node or onnxruntime-web); the batch size may change between runs. */
export class OnnxCompiledProgram implements CompiledProgram {
  private released = false;
  private readonly unsharedCopies = new Map<string, Float32Array>();

  constructor(
    private readonly Tensor: OrtTensorClass,
    private readonly sessions: SessionSource,
    private readonly name: string,
    private readonly signature: InputSignature,
    private readonly outputNames: Readonly<Record<string, string>>,
    private readonly options: CompiledProgramOptions,
  ) {}

  async run(inputs: Readonly<Record<string, HostTensor>>, options: RunOptions = {}): Promise<Record<string, HostTensor>> {
    if (this.released) throw new Error(`program '${this.name}' was disposed and cannot run`);
    const keys = options.only ?? Object.keys(this.outputNames);
    // Caller-owned buffers become ONNX Runtime's pre-allocated outputs where it writes into them: no copy.
    const fetches: Record<string, Tensor | null> = {};
    for (const key of keys) {
      const onnxName = this.outputNames[key];
      if (onnxName === undefined)
        throw new Error(`program '${this.name}' has no output '${key}' (outputs: ${Object.keys(this.outputNames).join(', ')})`);
      const target = this.options.writesIntoCallerBuffers ? options.into?.[key] : undefined;
      fetches[onnxName] = target ? new this.Tensor('float32', target.data, target.shape) : null;
    }
    const { feeds, batch } = this.feeds(inputs);
    let results: InferenceSession.OnnxValueMapType;
    try {
      results = await this.sessions.use(batch, (session) => session.run(feeds, fetches));
    } catch (error) {
      throw new Error(`program '${this.name}' on ONNX Runtime: ${(error as Error).message}`, { cause: error });
    }
    const outputs: Record<string, HostTensor> = {};
    for (const key of keys) {
      const target = options.into?.[key];
      const tensor = results[this.outputNames[key]];
      if (target) {
        checkOutputBuffer(this.name, key, target, tensor.dims);
        if (!this.options.writesIntoCallerBuffers) target.data.set(tensor.data as Float32Array);
      }
      outputs[key] = target ?? { shape: [...tensor.dims], data: tensor.data as Float32Array };
    }
    return outputs;
  }

  dispose(): void {
    if (this.released) return;
    this.released = true;
    this.sessions.release();
  }

  /**
   * Wraps each input's Float32Array (no copy unless it is shared memory), after checking it against the
   * compiled signature; with the run's batch size (0 when no input is batched).
   */
  private feeds(inputs: Readonly<Record<string, HostTensor>>): { feeds: Record<string, Tensor>; batch: number } {
    const batch = checkFeeds(this.name, this.signature, inputs) ?? 0;
    const feeds: Record<string, Tensor> = {};
    for (const [key, value] of Object.entries(inputs)) {
      feeds[key] = new this.Tensor('float32', this.readable(key, value.data), value.shape);
    }
    return { feeds, batch };
  }

  /** The input as onnxruntime-node reads it, copied into a buffer kept per input when it is shared memory. */
  private readable(key: string, data: Float32Array): Float32Array {
    const readable = readableByOrt(data, this.unsharedCopies.get(key));
    if (readable !== data) this.unsharedCopies.set(key, readable);
    return readable;
  }
}
