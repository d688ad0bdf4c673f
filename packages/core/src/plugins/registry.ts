// tsyringe needs the Reflect metadata API present when it loads, even though gradfeat registers
// values under explicit tokens and uses no decorator metadata.
import 'reflect-metadata';
import { type DependencyContainer, type InjectionToken, container as rootContainer } from 'tsyringe';
import type { BackendPlugin } from '../backend/registry.js';
import type { ModelFormat } from '../io/model-formats.js';

/** Anything a plugin provides is found by its name: a backend family, a model format, a dataset format. */
export interface PluginEntry {
  readonly name: string;
}

/**
 * A gradfeat plugin: what one package (or one module of your own) adds to gradfeat. As a module, it
 * is the default export of a JavaScript file or package, which `gradfeat --plugin <module-or-path>`
 * loads. `@gradfeat/datasets` adds the field `datasetFormats` (its types declare it here).
 *
 * Names are unique per kind: registering the same plugin twice (the same object, or one with the same
 * plugin name, as when two copies of a package are loaded) changes nothing; a different plugin that
 * registers a name already taken is an error naming both plugins, as ONNX Runtime does with backends.
 */
export interface GradfeatPlugin {
  /** Who provides it, usually the npm package's name; errors about a name collision name it. */
  readonly name: string;
  /** Execution backends, selected by priority or by name (`--backend`). */
  readonly backends?: readonly BackendPlugin[];
  /** Model file formats `loadNetwork` (and `--model`) reads. */
  readonly modelFormats?: readonly ModelFormat[];
}

/** A registered entry, with the plugin that provided it. */
export interface Registration<T extends PluginEntry> {
  readonly entry: T;
  /** The providing plugin's name. */
  readonly plugin: string;
  /** Where the plugin was loaded from (a file or package), when its loader said. */
  readonly from?: string;
}

/** What `typeof` must say of an entry's members, e.g. `{ create: 'function', priority: 'number' }`. */
export type PluginMembers = Readonly<Record<string, 'function' | 'number' | 'string'>>;

/**
 * One kind of entry that plugins provide: the `GradfeatPlugin` field listing them, what one is called
 * in messages, the members each must have, and the tsyringe token they are registered under.
 */
export interface PluginSlot<T extends PluginEntry> {
  readonly field: string;
  readonly noun: string;
  readonly members: PluginMembers;
  readonly token: InjectionToken<Registration<T>>;
}

/** The slots are registered too, so that one container knows every kind a loaded package defines. */
const PLUGIN_SLOT: InjectionToken<PluginSlot<PluginEntry>> = Symbol.for('gradfeat.PluginSlot');

/**
 * Declares a kind of plugin entry (core declares backends and model formats, `@gradfeat/datasets`
 * dataset formats). Tokens are global symbols, so two copies of a package share one registry.
 */
export function definePluginSlot<T extends PluginEntry>(field: string, noun: string, members: PluginMembers): PluginSlot<T> {
  const slot: PluginSlot<T> = { field, noun, members, token: Symbol.for(`gradfeat.plugin.${field}`) };
  if (!pluginSlots(rootContainer).some((s) => s.field === field)) rootContainer.register(PLUGIN_SLOT, { useValue: slot });
  return slot;
}

function pluginSlots(container: DependencyContainer): PluginSlot<PluginEntry>[] {
  return container.isRegistered(PLUGIN_SLOT, true) ? [...container.resolveAll(PLUGIN_SLOT)] : [];
}

/**
 * A container of its own, a child of the root one: plugins registered in it stay there (in a test, say).
 * Once it has entries of a kind, lookups in it see only those, not the root container's of that kind.
 */
export function createPluginContainer(): DependencyContainer {
  return rootContainer.createChildContainer();
}

/** Where `registerPlugin` registers, and where the plugin came from for messages. */
export interface RegisterPluginOptions {
  /** Default: tsyringe's root container; a child container keeps the registrations local (e.g. to a test). */
  readonly container?: DependencyContainer;
  /** The file or package the plugin was loaded from. */
  readonly from?: string;
}

/**
 * Registers every entry of a plugin, all or none: a malformed plugin, or a name another plugin has
 * taken, is an error and registers nothing. Registering the same plugin again changes nothing.
 */
export function registerPlugin(plugin: GradfeatPlugin, options: RegisterPluginOptions = {}): void {
  const { container = rootContainer, from } = options;
  const source = from ? ` (${from})` : '';
  if (typeof plugin !== 'object' || plugin === null || typeof plugin.name !== 'string' || plugin.name === '') {
    throw new Error(`a gradfeat plugin${source} must be an object with a non-empty 'name', got ${describeValue(plugin)}`);
  }
  const label = `plugin '${plugin.name}'${source}`;
  const slots = pluginSlots(container);
  const additions: [PluginSlot<PluginEntry>, PluginEntry][] = [];
  for (const [field, entries] of Object.entries(plugin)) {
    if (field === 'name' || entries === undefined) continue;
    const slot = slots.find((s) => s.field === field);
    if (!slot) {
      const known = slots.map((s) => s.field).join(', ');
      throw new Error(`${label}: unknown field '${field}'; a plugin lists ${known} (datasetFormats once @gradfeat/datasets is loaded)`);
    }
    if (!Array.isArray(entries)) throw new Error(`${label}: '${field}' must be a list of ${slot.noun}s, got ${describeValue(entries)}`);
    entries.forEach((entry: unknown, i: number) => {
      checkEntry(entry, slot, `${label}: ${field}[${i}]`);
    });
    for (const entry of entries as PluginEntry[]) {
      if (entries.filter((other: PluginEntry) => other.name === entry.name).length > 1) {
        throw new Error(`${label} lists the ${slot.noun} '${entry.name}' twice`);
      }
      const taken = ownRegistrations(slot, container).find((r) => r.entry.name === entry.name);
      if (!taken) additions.push([slot, entry]);
      else if (taken.entry !== entry && taken.plugin !== plugin.name) {
        throw new Error(
          `${label} registers the ${slot.noun} '${entry.name}', which plugin '${taken.plugin}'${taken.from ? ` (${taken.from})` : ''} has registered; ` +
            `a name belongs to one plugin: load only one of them, or rename the ${slot.noun}`,
        );
      }
    }
  }
  for (const [slot, entry] of additions) container.register(slot.token, { useValue: { entry, plugin: plugin.name, from } });
}

function checkEntry(entry: unknown, slot: PluginSlot<PluginEntry>, where: string): void {
  if (
    typeof entry !== 'object' ||
    entry === null ||
    typeof (entry as PluginEntry).name !== 'string' ||
    (entry as PluginEntry).name === ''
  ) {
    throw new Error(`${where}: a ${slot.noun} needs a non-empty 'name', got ${describeValue(entry)}`);
  }
  for (const [member, type] of Object.entries(slot.members)) {
    const value = (entry as Record<string, unknown>)[member];
    if (typeof value !== type) {
      throw new Error(
        `${where}: the ${slot.noun} '${(entry as PluginEntry).name}' needs '${member}' (a ${type}), got ${describeValue(value)}`,
      );
    }
  }
}

/** The container's own registrations: a child container is a scope of its own, as tsyringe resolves it. */
function ownRegistrations<T extends PluginEntry>(slot: PluginSlot<T>, container: DependencyContainer): Registration<T>[] {
  return container.isRegistered(slot.token) ? [...container.resolveAll(slot.token)] : [];
}

/** Every registration of a kind, in registration order (a child container without any sees its parent's). */
export function registrations<T extends PluginEntry>(
  slot: PluginSlot<T>,
  container: DependencyContainer = rootContainer,
): Registration<T>[] {
  return container.isRegistered(slot.token, true) ? [...container.resolveAll(slot.token)] : [];
}

/** A lookup by name that found nothing: it lists the registered names; the caller knows how its user adds a plugin. */
export class NotRegisteredError extends Error {
  constructor(
    /** What was looked for, e.g. 'backend'. */
    readonly noun: string,
    /** The name (or, for model formats, the path) asked for. */
    readonly requested: string,
    /** The names that are registered. */
    readonly registered: readonly string[],
    message = `unknown ${noun} '${requested}' (registered: ${registered.join(', ') || 'none'})`,
  ) {
    super(message);
    this.name = 'NotRegisteredError';
  }
}

/** The entry registered under `name`, or a NotRegisteredError listing the registered ones. */
export function registeredEntry<T extends PluginEntry>(
  slot: PluginSlot<T>,
  name: string,
  container: DependencyContainer = rootContainer,
): T {
  const all = registrations(slot, container).map((r) => r.entry);
  const found = all.find((entry) => entry.name === name);
  if (!found)
    throw new NotRegisteredError(
      slot.noun,
      name,
      all.map((entry) => entry.name),
    );
  return found;
}

function describeValue(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object')
    return `an object with ${
      Object.keys(value)
        .map((key) => `'${key}'`)
        .join(', ') || 'no fields'
    }`;
  return JSON.stringify(value);
}

export type { DependencyContainer } from 'tsyringe';
