import type { HostTensor } from '@gradfeat/core';

/**
 * The safetensors format (what `safetensors.torch.load_file` and `safetensors.flax.load_file` read):
 * an 8-byte little-endian header length, a JSON header giving each tensor's dtype, shape and byte
 * range, and the tensors' bytes. gradfeat writes float32 only; `__metadata__` holds strings.
 */
const METADATA = '__metadata__';

interface HeaderEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data_offsets: readonly [number, number];
}

/** Writes float32 tensors (in map order) and string metadata as safetensors bytes. */
export function encodeSafetensors(tensors: ReadonlyMap<string, HostTensor>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const header: Record<string, HeaderEntry | Readonly<Record<string, string>>> = { [METADATA]: metadata };
  let offset = 0;
  for (const [name, tensor] of tensors) {
    header[name] = { dtype: 'F32', shape: tensor.shape, data_offsets: [offset, offset + tensor.data.byteLength] };
    offset += tensor.data.byteLength;
  }
  // The header is padded with spaces to a multiple of 8 bytes, so the data that follows is aligned.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const tensor of tensors.values()) {
    // Float32Array is little-endian on every platform Node supports, as the format requires.
    out.set(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength), at);
    at += tensor.data.byteLength;
  }
  return out;
}

/** The tensors and `__metadata__` of a safetensors file. */
export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, HostTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Reads a float32 safetensors file back, checking each entry's byte range against its shape. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const fail = (problem: string): never => {
    throw new Error(`${source}: ${problem}`);
  };
  if (bytes.length < 8) fail('shorter than the 8-byte header length');
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + headerLength > bytes.length) fail(`header length ${headerLength} runs past the end of the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + headerLength)).toString('utf8'));
  } catch (error) {
    return fail(`header is not JSON (${(error as Error).message})`);
  }
  const data = bytes.subarray(8 + headerLength);
  const tensors = new Map<string, HostTensor>();
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA) continue;
    const entry = value as HeaderEntry;
    if (entry.dtype !== 'F32') fail(`tensor '${name}' has dtype ${entry.dtype}; only F32 is read`);
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || end > data.length) fail(`tensor '${name}': bytes ${begin}..${end} do not hold shape [${entry.shape}]`);
    // A copy, so the tensor is aligned and owns its memory whatever buffer `bytes` is a view of.
    const values = new Uint8Array(end - begin);
    values.set(data.subarray(begin, end));
    tensors.set(name, { shape: [...entry.shape], data: new Float32Array(values.buffer) });
  }
  return { tensors, metadata: (header[METADATA] as Record<string, string> | undefined) ?? {} };
}
