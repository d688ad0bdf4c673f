// Assembles src/train/optimisers.wat into src/train/optimisers-wasm.ts (the bytes as base64), so that the
// library needs no assembler at run time. A test checks the committed bytes against the .wat.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assembleWat } from './wat.mjs';

const source = fileURLToPath(new URL('../src/train/optimisers.wat', import.meta.url));
const target = fileURLToPath(new URL('../src/train/optimisers-wasm.ts', import.meta.url));
const bytes = await assembleWat(readFileSync(source, 'utf8'));
writeFileSync(
  target,
  `// Generated from optimisers.wat by scripts/assemble-wasm.mjs; do not edit.\nexport const OPTIMISERS_WASM_BASE64 =\n  '${Buffer.from(bytes).toString('base64')}';\n`,
);
console.log(`${target}: ${bytes.length} bytes`);
