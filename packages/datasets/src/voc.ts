import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { DatasetFileError, fileSystemError } from './errors.js';
import { fileDataset } from './file-dataset.js';
import { isDirectory, isFile, lineError, readTextLines } from './files.js';
import type { ImageDataset } from './types.js';

/** The 20 PASCAL VOC classes in the devkit's order, which is the target index order. */
export const VOC_CLASSES: readonly string[] = [
  'aeroplane',
  'bicycle',
  'bird',
  'boat',
  'bottle',
  'bus',
  'car',
  'cat',
  'chair',
  'cow',
  'diningtable',
  'dog',
  'horse',
  'motorbike',
  'person',
  'pottedplant',
  'sheep',
  'sofa',
  'train',
  'tvmonitor',
];

/** PASCAL VOC 2007's image sets. */
export const VOC_SPLITS = ['train', 'val', 'trainval', 'test'] as const;
/** One of `VOC_SPLITS`. */
export type VocSplit = (typeof VOC_SPLITS)[number];

/** Options of `openVoc2007`. */
export interface VocOptions {
  readonly split?: VocSplit;
  /**
   * Where the per-image class labels come from: the devkit's `ImageSets/Main/<class>_<split>.txt`
   * files, or the `Annotations/*.xml` objects (present non-difficult → 1, only difficult → 0, else −1,
   * the rule those files were made with). Default: the label files when all 20 exist, else the XML.
   */
  readonly labelsFrom?: 'imagesets' | 'annotations';
}

/** One object of a VOC annotation. */
export interface VocObject {
  readonly name: string;
  readonly difficult: boolean;
  readonly truncated: boolean;
  readonly box?: { readonly xmin: number; readonly ymin: number; readonly xmax: number; readonly ymax: number };
}

/** One image's VOC annotation. */
export interface VocAnnotation {
  readonly filename?: string;
  readonly width?: number;
  readonly height?: number;
  readonly objects: readonly VocObject[];
}

/** Class presence per image in the devkit's encoding. */
const PRESENT = 1;
const ONLY_DIFFICULT = 0;
const ABSENT = -1;

/**
 * PASCAL VOC 2007 in the devkit layout. `root` is the VOC2007 folder, or a folder holding
 * `VOC2007/` or `VOCdevkit/VOC2007/`. Images are `JPEGImages/<id>.jpg`; targets are multi-hot over
 * VOC_CLASSES with difficult-only classes flagged (the devkit excludes those from AP).
 */
export async function openVoc2007(root: string, options: VocOptions = {}): Promise<ImageDataset> {
  const split = options.split ?? 'trainval';
  if (!VOC_SPLITS.includes(split)) throw new Error(`VOC 2007 splits are ${VOC_SPLITS.join(', ')}, not '${split}'`);
  const base = await findVocRoot(root);
  const main = join(base, 'ImageSets', 'Main');
  const splitFile = join(main, `${split}.txt`);
  const ids = await readTextLines(splitFile);
  const classFiles = VOC_CLASSES.map((name) => join(main, `${name}_${split}.txt`));
  let labelsFrom = options.labelsFrom;
  if (!labelsFrom) {
    const haveAllClassFiles = (await Promise.all(classFiles.map(isFile))).every(Boolean);
    labelsFrom = haveAllClassFiles || !(await isDirectory(join(base, 'Annotations'))) ? 'imagesets' : 'annotations';
  }
  const presence =
    labelsFrom === 'imagesets'
      ? await presenceFromLabelFiles(classFiles, ids, splitFile)
      : await presenceFromAnnotations(join(base, 'Annotations'), ids);
  const classCount = VOC_CLASSES.length;
  const positive = Uint8Array.from(presence, (value) => (value === PRESENT ? 1 : 0));
  const difficult = Uint8Array.from(presence, (value) => (value === ONLY_DIFFICULT ? 1 : 0));
  const paths = ids.map((id) => join(base, 'JPEGImages', `${id}.jpg`));
  return fileDataset(`VOC 2007 ${split} (${base})`, VOC_CLASSES, paths, { kind: 'multi-label', classCount, positive, difficult });
}

async function findVocRoot(root: string): Promise<string> {
  for (const candidate of [root, join(root, 'VOC2007'), join(root, 'VOCdevkit', 'VOC2007')]) {
    if (await isDirectory(join(candidate, 'ImageSets', 'Main'))) return candidate;
  }
  throw new DatasetFileError(root, 'no ImageSets/Main folder here, in VOC2007/ or in VOCdevkit/VOC2007/: not a VOC 2007 devkit');
}

/** [ids × classes] presence values read from the 20 `<class>_<split>.txt` files. */
async function presenceFromLabelFiles(classFiles: readonly string[], ids: readonly string[], splitFile: string): Promise<Int8Array> {
  const presence = new Int8Array(ids.length * classFiles.length);
  const row = new Map(ids.map((id, i) => [id, i]));
  for (const [classIndex, file] of classFiles.entries()) {
    const seen = new Uint8Array(ids.length);
    for (const [lineIndex, line] of (await readTextLines(file)).entries()) {
      const match = /^(\S+)\s+(-1|0|1)$/.exec(line);
      if (!match) throw lineError(file, lineIndex + 1, line, "'<image id> <1|0|-1>'");
      const i = row.get(match[1]);
      if (i === undefined) throw new DatasetFileError(file, `line ${lineIndex + 1}: image ${match[1]} is not in ${splitFile}`);
      presence[i * classFiles.length + classIndex] = Number(match[2]);
      seen[i] = 1;
    }
    const missing = seen.indexOf(0);
    if (missing >= 0) throw new DatasetFileError(file, `has no line for image ${ids[missing]} listed in ${splitFile}`);
  }
  return presence;
}

async function presenceFromAnnotations(directory: string, ids: readonly string[]): Promise<Int8Array> {
  const presence = new Int8Array(ids.length * VOC_CLASSES.length).fill(ABSENT);
  for (const [i, id] of ids.entries()) {
    const path = join(directory, `${id}.xml`);
    const xml = await readFile(path, 'utf8').catch((error) => {
      throw fileSystemError(path, error);
    });
    for (const object of parseVocAnnotation(xml, path).objects) {
      const cell = i * VOC_CLASSES.length + VOC_CLASSES.indexOf(object.name);
      if (!object.difficult) presence[cell] = PRESENT;
      else if (presence[cell] === ABSENT) presence[cell] = ONLY_DIFFICULT;
    }
  }
  return presence;
}

/** Reads VOC XML: element text as trimmed strings, attributes and DOCTYPE entities left alone (no expansion). */
const XML = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  processEntities: false,
  isArray: (name) => name === 'object',
});

type XmlElement = { readonly [tag: string]: XmlValue };
type XmlValue = string | XmlElement | readonly XmlValue[];

/**
 * Parses one VOC annotation file: size and the objects with their class, difficult/truncated flags
 * and box. The XML must be well-formed (an unclosed <object> is an error naming the line, never an
 * object dropped); parsing takes time linear in the file's size.
 */
export function parseVocAnnotation(xml: string, path: string): VocAnnotation {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new DatasetFileError(path, `not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`);
  let document: XmlElement;
  try {
    document = XML.parse(xml) as XmlElement;
  } catch (error) {
    throw new DatasetFileError(path, `not readable XML (${(error as Error).message})`, { cause: error });
  }
  const annotation = document.annotation;
  if (annotation === undefined) throw new DatasetFileError(path, 'no <annotation> element: not a VOC annotation file');
  const root = asElement(annotation);
  const objects = ((root.object ?? []) as readonly XmlValue[]).map((value, i): VocObject => {
    // A person's <part> elements carry their own <name>s; only the object's own children count.
    const object = asElement(value);
    const name = text(object.name);
    if (name === undefined) throw new DatasetFileError(path, `object ${i + 1} has no <name>`);
    if (!VOC_CLASSES.includes(name)) {
      throw new DatasetFileError(path, `object ${i + 1} has class '${name}', which is not one of the 20 VOC classes`);
    }
    const box = object.bndbox === undefined ? undefined : asElement(object.bndbox);
    return {
      name,
      difficult: text(object.difficult) === '1',
      truncated: text(object.truncated) === '1',
      box:
        box === undefined
          ? undefined
          : {
              xmin: number(box, 'xmin', path),
              ymin: number(box, 'ymin', path),
              xmax: number(box, 'xmax', path),
              ymax: number(box, 'ymax', path),
            },
    };
  });
  const size = root.size === undefined ? undefined : asElement(root.size);
  return {
    filename: text(root.filename),
    width: size === undefined ? undefined : number(size, 'width', path),
    height: size === undefined ? undefined : number(size, 'height', path),
    objects,
  };
}

/** An element's children; an empty or text-only element has none. */
function asElement(value: XmlValue): XmlElement {
  return typeof value === 'object' && !Array.isArray(value) ? (value as XmlElement) : {};
}

/** The text of a leaf element (the first, if repeated). */
function text(value: XmlValue | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}

function number(element: XmlElement, tag: string, path: string): number {
  const raw = text(element[tag]);
  const value = raw === undefined || raw === '' ? Number.NaN : Number(raw);
  if (!Number.isFinite(value)) throw new DatasetFileError(path, `<${tag}> is missing or not a number`);
  return value;
}
