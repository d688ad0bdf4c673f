import { targetCount } from './targets.js';
import type { LabelKind, Targets } from './types.js';

/** A shard's targets as its manifest entry stores them: one entry per image. */
export type ShardTargets = { readonly labels: number[] } | { readonly positive: number[][]; readonly difficult: number[][] };

/** Targets as a shard's manifest entry stores them: class indices per image. */
export function targetsToJson(targets: Targets): ShardTargets {
  if (targets.kind === 'single-label') return { labels: [...targets.labels] };
  const classesWhere = (flags: Uint8Array) =>
    Array.from({ length: targetCount(targets) }, (_, image) =>
      Array.from(flags.subarray(image * targets.classCount, (image + 1) * targets.classCount)).flatMap((flag, c) => (flag ? [c] : [])),
    );
  return { positive: classesWhere(targets.positive), difficult: classesWhere(targets.difficult) };
}

/** A shard's stored targets back as Targets, checked against the manifest's label kind. */
export function targetsFromJson(json: ShardTargets, kind: LabelKind, classCount: number): Targets {
  if (kind === 'single-label' && 'labels' in json) return { kind, classCount, labels: Int32Array.from(json.labels) };
  if (kind === 'multi-label' && 'positive' in json) {
    const flags = (lists: number[][]) => {
      const array = new Uint8Array(lists.length * classCount);
      lists.forEach((classes, image) => {
        for (const c of classes) array[image * classCount + c] = 1;
      });
      return array;
    };
    return { kind, classCount, positive: flags(json.positive), difficult: flags(json.difficult) };
  }
  throw new Error(`feature cache shard targets do not match the manifest's label kind '${kind}'`);
}
