import { existsSync } from 'node:fs';
import { delimiter, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type GradfeatPlugin,
  NotRegisteredError,
  registeredBackends,
  registeredModelFormats,
  registerPlugin,
  registrations,
} from '@gradfeat/core';
import { DATASET_FORMATS, registeredDatasetFormats } from '@gradfeat/datasets';

/**
 * Where `gradfeat` finds plugins: the first-party packages that are installed, then the modules named
 * by `--plugin`, GRADFEAT_PLUGINS and a run config's `plugins:`. A plugin module's default export is a
 * `GradfeatPlugin`; the first-party ones are light modules that load ONNX Runtime or TF.js only when a
 * backend starts or a model is read, so listing what is registered costs little.
 */
export const FIRST_PARTY_PACKAGES = ['@gradfeat/core', '@gradfeat/datasets', '@gradfeat/backend-onnx', '@gradfeat/backend-tfjs'] as const;

/** The environment variable naming plugin modules, separated by commas or the platform's path delimiter. */
export const PLUGINS_ENV_VAR = 'GRADFEAT_PLUGINS';

/** A plugin module a user named, and where: relative paths are taken from `base`. */
export interface PluginRequest {
  /** A path (./x.mjs, /abs/x.js) or an installed package's name. */
  readonly module: string;
  /** Where it was named, for errors: '--plugin', 'GRADFEAT_PLUGINS' or a run config file. */
  readonly origin: string;
  /** The directory relative paths are taken from. */
  readonly base: string;
}

const loaded = new Map<string, Promise<void>>();
let firstParty: Promise<void> | undefined;
/** First-party packages that are not installed here, for messages. */
const missingFirstParty: string[] = [];

/** A path rather than a package name: it starts with '.' or is absolute (as Node tells them apart). */
export function isModulePath(module: string): boolean {
  return module.startsWith('.') || isAbsolute(module);
}

/** The `--plugin` values of a command line, read before the commands are built so that their help lists what the plugins add. */
export function pluginArguments(argv: readonly string[]): string[] {
  const modules: string[] = [];
  for (let i = 2; i < argv.length && argv[i] !== '--'; i++) {
    if (argv[i] === '--plugin' && i + 1 < argv.length) modules.push(argv[++i]);
    else if (argv[i].startsWith('--plugin=')) modules.push(argv[i].slice('--plugin='.length));
  }
  return modules;
}

/** The plugins named by `--plugin` on `argv` and by GRADFEAT_PLUGINS, relative to the working directory. */
export function commandLinePlugins(argv: readonly string[]): PluginRequest[] {
  const base = process.cwd();
  const fromEnvironment = (process.env[PLUGINS_ENV_VAR] ?? '')
    .split(new RegExp(`[,${delimiter}]`))
    .map((module) => module.trim())
    .filter((module) => module !== '');
  return [
    ...pluginArguments(argv).map((module) => ({ module, origin: '--plugin', base })),
    ...fromEnvironment.map((module) => ({ module, origin: PLUGINS_ENV_VAR, base })),
  ];
}

/**
 * Registers the installed first-party plugins (once per process) and then each requested module (once
 * per module). A first-party package that is not installed is left out, and named when something is
 * asked for that no plugin provides; a requested module that cannot be loaded is an error.
 */
export async function loadPlugins(requests: readonly PluginRequest[] = []): Promise<void> {
  firstParty ??= firstPartyPlugins(FIRST_PARTY_PACKAGES).then(({ plugins, missing }) => {
    for (const { name, plugin } of plugins) registerPlugin(plugin, { from: name });
    missingFirstParty.push(...missing);
  });
  await firstParty;
  for (const request of requests) {
    const key = isModulePath(request.module) ? resolve(request.base, request.module) : request.module;
    if (!loaded.has(key)) loaded.set(key, loadRequested(request, key));
    await loaded.get(key);
  }
}

/**
 * The plugin modules this process loaded on request (absolute paths or package names), so that a
 * cluster worker can load the same ones as its coordinator.
 */
export function requestedPlugins(): string[] {
  return [...loaded.keys()];
}

/** The plugin (`<package>/plugin`) of each package that is installed, and the packages that are not. */
export async function firstPartyPlugins(
  packages: readonly string[],
): Promise<{ plugins: { name: string; plugin: GradfeatPlugin }[]; missing: string[] }> {
  const plugins: { name: string; plugin: GradfeatPlugin }[] = [];
  const missing: string[] = [];
  for (const name of packages) {
    try {
      plugins.push({ name, plugin: pluginOf(await import(`${name}/plugin`), `${name}/plugin`) });
    } catch (error) {
      if (!isMissingPackage(error, name)) throw new Error(`${name} is installed but its plugin does not load: ${(error as Error).message}`);
      missing.push(name);
    }
  }
  return { plugins, missing };
}

async function loadRequested(request: PluginRequest, key: string): Promise<void> {
  const where = `${request.origin}: plugin '${request.module}'`;
  const path = isModulePath(request.module);
  if (path && !existsSync(key)) {
    throw new Error(
      `${where}: ${key} does not exist; give the path of a JavaScript module (e.g. ./my-plugin.mjs) or an installed package's name`,
    );
  }
  let module: { default?: GradfeatPlugin };
  try {
    module = await import(path ? pathToFileURL(key).href : key);
  } catch (error) {
    if (!path && isMissingPackage(error, key)) {
      const file = existsSync(resolve(request.base, key)) ? `; to load the file ${resolve(request.base, key)}, write ./${key}` : '';
      throw new Error(`${where}: no package '${key}' is installed where gradfeat can import it${file}`);
    }
    throw new Error(`${where}: ${key} does not load: ${(error as Error).message}`);
  }
  registerPlugin(pluginOf(module, key === request.module ? where : `${where} (${key})`), { from: key });
}

function pluginOf(module: { default?: GradfeatPlugin }, where: string): GradfeatPlugin {
  if (module.default === undefined) {
    throw new Error(`${where} has no default export; a plugin module exports default { name, backends?, modelFormats?, datasetFormats? }`);
  }
  return module.default;
}

/** Node's error for an import of a package that is not installed (not for one whose own imports fail). */
function isMissingPackage(error: unknown, specifier: string): boolean {
  const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
  // Node names the package, Vite (in tests) the whole specifier.
  const names = [`'${name}'`, `'${name}/`];
  return (error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && names.some((quoted) => (error as Error).message.includes(quoted));
}

/** How to add what a NotRegisteredError did not find, on the command line; other errors as they are. */
export function withPluginHint(error: unknown): string {
  const message = (error as Error).message;
  if (!(error instanceof NotRegisteredError)) return message;
  const missing = missingFirstParty.length > 0 ? ` (not installed here: ${missingFirstParty.join(', ')})` : '';
  return `${message}; a plugin adds ${error.noun}s: gradfeat --plugin <module-or-path>, ${PLUGINS_ENV_VAR}=<module,…> or plugins: [<module>] in the run config${missing}`;
}

/** What the registered plugins provide, for --help. */
export function registeredSummary(): string {
  const names = (entries: readonly { name: string }[]) => entries.map((entry) => entry.name).join(', ') || 'none';
  return [
    'Registered by plugins (add more with --plugin <module-or-path> or GRADFEAT_PLUGINS):',
    `  backends:        ${names(registeredBackends())}`,
    `  model formats:   ${names(registeredModelFormats())}`,
    `  dataset formats: ${names(registeredDatasetFormats())}`,
    ...(missingFirstParty.length > 0 ? [`  not installed:   ${missingFirstParty.join(', ')}`] : []),
  ].join('\n');
}

/** The registered dataset kinds, for option descriptions. */
export function datasetKinds(): string {
  return registeredDatasetFormats()
    .map((format) => format.name)
    .join(', ');
}

/** Each registered dataset format: its KIND, what PATH is, and the plugin it comes from. */
export function datasetFormatsHelp(): string {
  const formats = registrations(DATASET_FORMATS);
  const width = Math.max(...formats.map((r) => r.entry.name.length));
  return [
    'Dataset formats (KIND:PATH):',
    ...formats.map(({ entry, plugin }) => `  ${entry.name.padEnd(width)}  ${entry.describes} (${plugin})`),
  ].join('\n');
}
