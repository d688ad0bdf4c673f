import { describe, expect, it } from 'vitest';
import {
  BACKENDS,
  type BackendPlugin,
  corePlugin,
  createPluginContainer,
  type GradfeatPlugin,
  loadNetwork,
  type ModelFormat,
  NotRegisteredError,
  referenceBackendPlugin,
  registeredBackends,
  registeredModelFormats,
  registerPlugin,
  registrations,
  resolveBackend,
  smallCnn,
} from '../src/index.js';

const network = smallCnn({ input: [1, 4, 4], channels: [2], strides: [1], classes: 2, seed: 1 });

/** A model format that reads '.tiny' paths as one fixed network. */
const tinyFormat: ModelFormat = {
  name: 'tiny',
  describes: 'a .tiny file',
  canLoad: (path) => path.endsWith('.tiny'),
  load: async () => network,
};
const fastBackend: BackendPlugin = { name: 'fast', priority: 30, create: referenceBackendPlugin.create };
const tinyPlugin: GradfeatPlugin = { name: 'tiny-models', backends: [fastBackend], modelFormats: [tinyFormat] };

describe('registerPlugin', () => {
  it('registers every entry of a plugin, where lookups find it by priority, name or path', async () => {
    const scope = createPluginContainer();
    registerPlugin(corePlugin, { container: scope });
    registerPlugin(tinyPlugin, { container: scope, from: '/plugins/tiny.mjs' });
    expect(registeredBackends(scope).map((b) => b.name)).toEqual(['fast', 'js']);
    expect(registrations(BACKENDS, scope).map((r) => [r.entry.name, r.plugin, r.from])).toEqual([
      ['js', '@gradfeat/core', undefined],
      ['fast', 'tiny-models', '/plugins/tiny.mjs'],
    ]);
    expect(await loadNetwork('/models/a.tiny', { container: scope })).toBe(network);
    expect((await resolveBackend('fast', scope)).name).toBe('js-reference');
    // Nothing leaks into the root container.
    expect(registeredModelFormats().map((f) => f.name)).not.toContain('tiny');
  });

  it('the same plugin twice, or an equal one from the same package, changes nothing', () => {
    const scope = createPluginContainer();
    registerPlugin(tinyPlugin, { container: scope });
    registerPlugin(tinyPlugin, { container: scope });
    // A second copy of the package: new objects under the same plugin name. The first one stays.
    const copy: GradfeatPlugin = { name: 'tiny-models', backends: [{ ...fastBackend }], modelFormats: [{ ...tinyFormat }] };
    registerPlugin(copy, { container: scope });
    expect(registeredBackends(scope)).toEqual([fastBackend]);
    expect(registeredModelFormats(scope)).toHaveLength(1);
    expect(registeredModelFormats(scope)[0]).toBe(tinyFormat);
  });

  it('a different plugin under a taken name is an error naming both, and registers none of its entries', () => {
    const scope = createPluginContainer();
    registerPlugin(tinyPlugin, { container: scope, from: '/plugins/tiny.mjs' });
    const rival: GradfeatPlugin = {
      name: 'rival-models',
      backends: [{ name: 'slow', priority: 1, create: fastBackend.create }],
      modelFormats: [{ ...tinyFormat, describes: 'another .tiny reader' }],
    };
    expect(() => registerPlugin(rival, { container: scope, from: '/plugins/rival.mjs' })).toThrow(
      "plugin 'rival-models' (/plugins/rival.mjs) registers the model format 'tiny', which plugin 'tiny-models' (/plugins/tiny.mjs) has registered; " +
        'a name belongs to one plugin: load only one of them, or rename the model format',
    );
    expect(registeredBackends(scope).map((b) => b.name)).toEqual(['fast']);
  });

  it('refuses a malformed plugin with what is wrong and where', () => {
    const scope = createPluginContainer();
    const attempt = (plugin: unknown) => () => registerPlugin(plugin as GradfeatPlugin, { container: scope, from: 'x.mjs' });
    expect(attempt(undefined)).toThrow("a gradfeat plugin (x.mjs) must be an object with a non-empty 'name', got undefined");
    expect(attempt({ backends: [] })).toThrow("must be an object with a non-empty 'name', got an object with 'backends'");
    expect(attempt({ name: 'p', backend: [] })).toThrow(
      "plugin 'p' (x.mjs): unknown field 'backend'; a plugin lists backends, modelFormats (datasetFormats once @gradfeat/datasets is loaded)",
    );
    expect(attempt({ name: 'p', modelFormats: tinyFormat })).toThrow(
      "plugin 'p' (x.mjs): 'modelFormats' must be a list of model formats, got an object with 'name', 'describes', 'canLoad', 'load'",
    );
    expect(attempt({ name: 'p', backends: [{ name: 'b', priority: 1 }] })).toThrow(
      "plugin 'p' (x.mjs): backends[0]: the backend 'b' needs 'create' (a function), got undefined",
    );
    expect(attempt({ name: 'p', backends: [{ priority: 1, create: fastBackend.create }] })).toThrow(
      "plugin 'p' (x.mjs): backends[0]: a backend needs a non-empty 'name'",
    );
    expect(attempt({ name: 'p', modelFormats: [tinyFormat, { ...tinyFormat }] })).toThrow(
      "plugin 'p' (x.mjs) lists the model format 'tiny' twice",
    );
    expect(registeredModelFormats(scope)).toEqual([]);
  });

  it('lookups that find nothing list what is registered', async () => {
    const scope = createPluginContainer();
    registerPlugin(tinyPlugin, { container: scope });
    const unknownBackend = resolveBackend('cuda', scope);
    await expect(unknownBackend).rejects.toThrow(NotRegisteredError);
    await expect(unknownBackend).rejects.toMatchObject({
      noun: 'backend',
      requested: 'cuda',
      registered: ['fast'],
      message: "unknown backend 'cuda' (registered: fast)",
    });
    await expect(loadNetwork('/models/net.pb', { container: scope })).rejects.toMatchObject({
      noun: 'model format',
      registered: ['tiny'],
      message: '/models/net.pb: not a model gradfeat can read; formats: tiny (a .tiny file)',
    });
  });
});
