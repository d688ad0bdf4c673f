import { referenceBackendPlugin } from './backend/reference.js';
import type { GradfeatPlugin } from './plugins/registry.js';

/**
 * Core's plugin: the float64 reference backend `js` (priority 0), slow but always able to start. The
 * `gradfeat` command loads it as the module `@gradfeat/core/plugin`, whose default export it is.
 */
export const corePlugin: GradfeatPlugin = { name: '@gradfeat/core', backends: [referenceBackendPlugin] };

export default corePlugin;
