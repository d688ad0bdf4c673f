import type { SampleSource } from '../data/source.js';
import { BATCH, type Shape } from '../ir/graph.js';
import type { HostTensor } from '../tensor.js';
import { type Backend, type CompileOptions, INPUT, type RunOptions, type SignedProgram } from './backend.js';

/** A program compiled once for batches of any size. */
export interface BatchProgram {
  /** Runs on one batch: the batched inputs and the fixed ones. */
  run(inputs: Readonly<Record<string, HostTensor>>, options?: RunOptions): Promise<Record<string, HostTensor>>;
  /** Frees what compiling allocated. */
  dispose(): void;
}

/**
 * Compiles `program` once to be fed batch after batch: the one way trunk extraction, head caches,
 * training steps, evaluation and benchmarks run a program over data. Its signature must batch at
 * least one input (BATCH on axis 0).
 */
export async function compileBatchProgram(backend: Backend, program: SignedProgram, options: CompileOptions = {}): Promise<BatchProgram> {
  if (!Object.values(program.inputs).some((shape) => shape[0] === BATCH)) {
    throw new Error(
      `program '${options.name ?? 'anonymous'}' batches none of its inputs (${Object.keys(program.inputs).join(', ')}), so it cannot run over batches`,
    );
  }
  return backend.compile(program, options);
}

/**
 * The batch at `rows` of each source (read with the same row list, so split rows are read once).
 * With `buffers`, each source may read into the buffer the previous batch of its size used (see
 * SampleSource.read), so the previous batch's data must no longer be needed.
 */
export async function readRows(
  sources: Readonly<Record<string, SampleSource>>,
  rows: readonly number[],
  buffers?: Map<string, Float32Array>,
): Promise<Record<string, HostTensor>> {
  const batch: Record<string, HostTensor> = {};
  for (const [name, source] of Object.entries(sources)) {
    batch[name] = await source.read(rows, buffers?.get(name));
    buffers?.set(name, batch[name].data);
  }
  return batch;
}

/** The shapes of tensors, e.g. of a method's trainables. */
export function shapesOf(tensors: Iterable<readonly [string, HostTensor]>): Record<string, Shape> {
  return Object.fromEntries([...tensors].map(([name, tensor]) => [name, tensor.shape]));
}

/**
 * Runs a program over a source in batches and stacks one output: features, logits, trunk outputs.
 * The source feeds the program's INPUT; `extraInputs` are the same every batch.
 */
export async function mapBatches(
  backend: Backend,
  program: SignedProgram,
  source: SampleSource,
  batchSize: number,
  output: string,
  extraInputs: ReadonlyMap<string, HostTensor> = new Map(),
  onBatch?: (done: number, total: number) => void,
): Promise<HostTensor> {
  const compiled = await compileBatchProgram(backend, program, { name: output });
  const fixed = Object.fromEntries(extraInputs);
  try {
    const parts: Float32Array[] = [];
    let rowShape: readonly number[] = [];
    const buffers = new Map<string, Float32Array>();
    for (let start = 0; start < source.count; start += batchSize) {
      const indices = Array.from({ length: Math.min(batchSize, source.count - start) }, (_, i) => start + i);
      const batch = { ...(await readRows({ [INPUT]: source }, indices, buffers)), ...fixed };
      const result = (await compiled.run(batch, { only: [output] }))[output];
      rowShape = result.shape.slice(1);
      parts.push(result.data);
      onBatch?.(start + indices.length, source.count);
    }
    const data = new Float32Array(parts.reduce((total, p) => total + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      data.set(part, offset);
      offset += part.length;
    }
    return { shape: [source.count, ...rowShape], data };
  } finally {
    compiled.dispose();
  }
}
