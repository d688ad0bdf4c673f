/** WebAssembly text to binary (SIMD on), by wabt. */
export function assembleWat(text: string): Promise<Uint8Array>;
