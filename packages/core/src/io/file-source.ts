import 'reflect-metadata';
import { type DependencyContainer, type InjectionToken, container as rootContainer } from 'tsyringe';

/**
 * Where a model's files come from: the file system (Node), a web server (fetch) or files a user
 * dropped into a page. Importers read through one of these, so the same code loads a model in Node
 * and in a browser. Paths are what the source understands (file paths, URLs, file names); an
 * importer finds a model's other files with `siblingPath`/`childPath`.
 */
export interface FileSource {
  /** The file's bytes; rejects with a FileNotFoundError when there is no such file. */
  read(path: string): Promise<Uint8Array>;
  /** Whether `path` is a folder (a model may be named by its folder); sources without folders answer false. */
  isDirectory(path: string): Promise<boolean>;
  /**
   * The file that a model's manifest names `name`, relative to the model file `modelFile` (a weight
   * shard beside model.json), found but not yet read. Names that would leave the model's folder are
   * refused without being opened; a missing file is an error naming where the source looked.
   */
  beside(modelFile: string, name: string, names: FileInsideNames): Promise<LocatedFile>;
}

/** How errors about a file that must stay inside a model's folder name the file and the folder. */
export interface FileInsideNames {
  /** What the file is, for errors: 'weight file', 'fixture tensor file'. */
  readonly what: string;
  /** Whose folder it must stay in: "the model's folder". */
  readonly folder: string;
}

/** A file `FileSource.beside` found. */
export interface LocatedFile {
  /** Where the source found it (file path, URL, a dropped file's name), for errors. */
  readonly path: string;
  /** Its size, when the source knows it without reading (so a manifest can be checked first). */
  readonly bytes?: number;
  /** Its bytes. */
  read(): Promise<Uint8Array>;
}

/** The tsyringe token of the FileSource that importers read through when they are given none. */
export const DEFAULT_FILES: InjectionToken<FileSource> = Symbol.for('gradfeat.DefaultFiles');

/**
 * Makes `files` what `loadNetwork` and the importers read through when they are given no FileSource.
 * Importing @gradfeat/core registers the file system in Node and `fetchFiles()` in a browser.
 */
export function registerDefaultFiles(files: FileSource, container: DependencyContainer = rootContainer): void {
  container.register(DEFAULT_FILES, { useValue: files });
}

/** The FileSource registered last with `registerDefaultFiles`. */
export function defaultFiles(container: DependencyContainer = rootContainer): FileSource {
  if (!container.isRegistered(DEFAULT_FILES, true)) throw new Error('no FileSource is registered: pass one, e.g. fetchFiles(baseUrl)');
  return container.resolve(DEFAULT_FILES);
}

/** What a FileSource rejects with when a file does not exist, so that importers can say which one is missing. */
export class FileNotFoundError extends Error {
  constructor(
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(`${path} does not exist`, options);
    this.name = 'FileNotFoundError';
  }
}

/** Index just past the last '/' (or '\\', for Windows paths) of `path`; 0 when it has none. */
function afterLastSeparator(path: string): number {
  return Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1;
}

/** The file `name` in the same folder as `path` (a file path or URL), e.g. a weight shard beside model.json. */
export function siblingPath(path: string, name: string): string {
  return path.slice(0, afterLastSeparator(path)) + name;
}

/** The file `name` inside the folder `folder`. */
export function childPath(folder: string, name: string): string {
  return afterLastSeparator(folder) === folder.length ? folder + name : `${folder}/${name}`;
}

/** The file name of a path or URL, without its folder. */
export function baseName(path: string): string {
  return path.slice(afterLastSeparator(path));
}

type Fetch = (url: URL) => Promise<{ ok: boolean; status: number; statusText: string; arrayBuffer(): Promise<ArrayBuffer> }>;

/**
 * Files served over HTTP: a path is a URL, or relative to `base` (default: the page's or worker's
 * own address). HTTP 404 is a missing file; other failures name the status.
 */
export function fetchFiles(base?: string | URL, fetchFile: Fetch = (url) => fetch(url)): FileSource {
  const resolve = (path: string) => {
    const origin = base ?? (globalThis as { location?: { href: string } }).location?.href;
    try {
      return new URL(path, origin);
    } catch (error) {
      throw new Error(`'${path}' is not a URL${origin === undefined ? ' and there is no base address to resolve it against' : ''}`, {
        cause: error,
      });
    }
  };
  const read = async (url: URL) => {
    const response = await fetchFile(url);
    if (response.status === 404) throw new FileNotFoundError(url.href);
    if (!response.ok) throw new Error(`${url.href}: HTTP ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  return {
    read: async (path) => read(resolve(path)),
    isDirectory: async () => false,
    async beside(modelFile, name, names) {
      const folder = resolve(siblingPath(modelFile, ''));
      const url = new URL(name, folder);
      if (url.origin !== folder.origin || !url.pathname.startsWith(folder.pathname)) {
        throw new Error(`${names.what} '${name}' leaves ${names.folder} (${folder.href}); only files inside it are read`);
      }
      return {
        path: url.href,
        read: () =>
          read(url).catch((error: Error) => {
            if (error instanceof FileNotFoundError) throw new Error(`${names.what} '${url.href}' is missing`, { cause: error });
            throw error;
          }),
      };
    },
  };
}

/** A file a user picked or dropped: the browser's File (a Blob with a name and, from a folder, its relative path). */
export interface NamedBlob {
  readonly name: string;
  /** The path within a folder the user picked, when they picked a folder. */
  readonly webkitRelativePath?: string;
  /** Its size in bytes. */
  readonly size: number;
  /** The file's contents. */
  arrayBuffer(): Promise<ArrayBuffer>;
}

/**
 * Files a user dropped or picked (e.g. a model.json with its weight shards), found by their path
 * within a picked folder or by their name.
 */
export function droppedFiles(files: Iterable<NamedBlob>): FileSource {
  const byPath = new Map<string, NamedBlob>();
  for (const file of files) {
    if (file.webkitRelativePath) byPath.set(file.webkitRelativePath, file);
    byPath.set(file.name, file);
  }
  const find = (path: string) => byPath.get(path) ?? byPath.get(baseName(path));
  return {
    async read(path) {
      const file = find(path);
      if (!file) throw new FileNotFoundError(path);
      return new Uint8Array(await file.arrayBuffer());
    },
    isDirectory: async () => false,
    // Only what the user dropped can be read, so no name leaves the model's folder.
    async beside(modelFile, name, names) {
      const file = find(siblingPath(modelFile, name));
      if (!file) throw new Error(`${names.what} '${name}' is missing (it was not among the dropped files)`);
      return { path: file.webkitRelativePath || file.name, bytes: file.size, read: async () => new Uint8Array(await file.arrayBuffer()) };
    },
  };
}
