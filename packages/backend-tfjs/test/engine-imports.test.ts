import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeEngineOnlyImports } from '../../../test-support/engine-imports.js';

describeEngineOnlyImports('@gradfeat/backend-tfjs', join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
