import { type FileSource, formatShape, type HostTensor, type LocatedFile, sizeOf, stridedOffsets, stridesOf } from '@gradfeat/core/engine';

/** One entry of a weightsManifest group, as TF.js writes it. */
interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly quantization?: { readonly dtype?: string };
}

const FLOAT32_BYTES = 4;

/**
 * Reads every weight listed in a TF.js `weightsManifest` from the shard files beside model.json. Each
 * group's shards are one little-endian byte stream, cut into the group's weights in order. Shard
 * paths must name regular files inside the model's folder, and their sizes must add up to what the
 * weights need (checked before any is read where the FileSource knows sizes, as the file system does). Returns the weights by manifest name, in Keras layout.
 */
export async function readWeights(manifest: unknown, modelFile: string, files: FileSource): Promise<Map<string, HostTensor>> {
  if (!Array.isArray(manifest)) throw new Error(`${modelFile}: no "weightsManifest" list`);
  const weights = new Map<string, HostTensor>();
  for (const [index, group] of manifest.entries()) {
    const where = `${modelFile}: weightsManifest group ${index + 1}`;
    const paths: unknown = group?.paths;
    const specs: unknown = group?.weights;
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string') || !Array.isArray(specs)) {
      throw new Error(`${where} needs "paths" (file names) and "weights" lists`);
    }
    const checked = specs.map((spec) => checkSpec(spec, where));
    const expectedBytes = checked.reduce((total, spec) => total + sizeOf(spec.shape) * FLOAT32_BYTES, 0);
    const bytes = await readShards(files, modelFile, paths, expectedBytes, checked).catch((error: Error) => {
      throw new Error(`${where}: ${error.message}`, { cause: error });
    });
    let offset = 0;
    for (const spec of checked) {
      const count = sizeOf(spec.shape);
      // Copied out so that each tensor owns an aligned buffer.
      const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + offset + count * FLOAT32_BYTES));
      weights.set(spec.name, { shape: [...spec.shape], data });
      offset += count * FLOAT32_BYTES;
    }
  }
  return weights;
}

function checkSpec(spec: unknown, where: string): WeightSpec {
  const candidate = spec as Partial<WeightSpec> | null;
  if (
    typeof candidate?.name !== 'string' ||
    !Array.isArray(candidate.shape) ||
    !candidate.shape.every((d) => Number.isSafeInteger(d) && d >= 0)
  ) {
    throw new Error(`${where}: weight entry ${JSON.stringify(spec)} needs a "name" and a "shape" of non-negative integers`);
  }
  if (candidate.quantization) {
    throw new Error(
      `${where}: weight '${candidate.name}' is quantized to ${candidate.quantization.dtype}; gradfeat reads float32 weights only (convert without --quantize_*)`,
    );
  }
  if (candidate.dtype !== 'float32') {
    throw new Error(`${where}: weight '${candidate.name}' has dtype ${candidate.dtype}; gradfeat reads float32 weights only`);
  }
  return candidate as WeightSpec;
}

async function readShards(
  source: FileSource,
  modelFile: string,
  paths: readonly string[],
  expectedBytes: number,
  specs: readonly WeightSpec[],
): Promise<Uint8Array> {
  const needs = `the weights ${describeSpecs(specs)} need ${expectedBytes} bytes${paths.length > 1 ? ` across ${paths.length} files` : ''}`;
  const withNeeds = (error: Error) => new Error(`${error.message}; ${needs}`, { cause: error });
  const files: LocatedFile[] = [];
  for (const path of paths) {
    files.push(
      await source.beside(modelFile, path, { what: 'weight file', folder: "the model's folder" }).catch((error: Error) => {
        throw withNeeds(error);
      }),
    );
  }
  // Sizes are compared before anything is read where the source knows them (files), after otherwise (fetch).
  const checkHeld = (sizes: readonly (number | undefined)[]) => {
    if (sizes.some((size) => size === undefined)) return;
    const held = (sizes as number[]).reduce((total, size) => total + size, 0);
    if (held === expectedBytes) return;
    const holder =
      files.length === 1 ? `weight file '${files[0].path}' holds` : `weight files ${files.map((f) => `'${f.path}'`).join(', ')} hold`;
    throw new Error(`${holder} ${held} bytes, but ${needs}`);
  };
  checkHeld(files.map((file) => file.bytes));
  const shards = await Promise.all(
    files.map((file) =>
      file.read().catch((error: Error) => {
        throw withNeeds(error);
      }),
    ),
  );
  checkHeld(shards.map((shard) => shard.byteLength));
  return shards.length === 1 ? shards[0] : new Uint8Array(await new Blob(shards as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

function describeSpecs(specs: readonly WeightSpec[]): string {
  const named = specs.slice(0, 4).map((s) => `${s.name} ${formatShape(s.shape)}`);
  return specs.length > 4 ? `${named.join(', ')} and ${specs.length - 4} more` : named.join(', ');
}

/** Transposes a row-major tensor: output axis i is input axis perm[i] (like numpy.transpose). */
export function permuteAxes(tensor: HostTensor, perm: readonly number[]): HostTensor {
  const { shape, data } = tensor;
  const outShape = perm.map((axis) => shape[axis]);
  const inStrides = stridesOf(shape);
  const sources = stridedOffsets(
    outShape,
    perm.map((axis) => inStrides[axis]),
  );
  const out = Float32Array.from(sources, (source) => data[source]);
  return { shape: outShape, data: out };
}
