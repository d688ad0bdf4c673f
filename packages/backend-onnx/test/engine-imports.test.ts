import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeEngineOnlyImports } from '../../../test-support/engine-imports.js';

describeEngineOnlyImports('@gradfeat/backend-onnx', join(dirname(fileURLToPath(import.meta.url)), '..', 'src'), {
  writeFileAtomic: "saveProgramAsOnnx writes the .onnx file atomically (no reader sees half a model) with core's io helper, Node only",
});
