import wabtInit from 'wabt';

/** WebAssembly text to binary (SIMD on), by wabt. */
export async function assembleWat(text) {
  const wabt = await wabtInit();
  const module = wabt.parseWat('module.wat', text, { simd: true });
  try {
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}
