import { type HostTensor, hostTensor } from '@gradfeat/core';
import type { SampleTarget, Targets } from './types.js';

/** The number of samples targets cover. */
export function targetCount(targets: Targets): number {
  return targets.kind === 'single-label' ? targets.labels.length : targets.positive.length / targets.classCount;
}

/** One sample's target. */
export function targetAt(targets: Targets, index: number): SampleTarget {
  if (targets.kind === 'single-label') return { label: targets.labels[index] };
  const row = index * targets.classCount;
  return {
    positive: targets.positive.subarray(row, row + targets.classCount),
    difficult: targets.difficult.subarray(row, row + targets.classCount),
  };
}

/** The targets of the samples at `rows`, in that order. */
export function selectTargets(targets: Targets, rows: readonly number[]): Targets {
  if (targets.kind === 'single-label') {
    return { ...targets, labels: Int32Array.from(rows, (row) => targets.labels[row]) };
  }
  const width = targets.classCount;
  const positive = new Uint8Array(rows.length * width);
  const difficult = new Uint8Array(rows.length * width);
  rows.forEach((row, i) => {
    positive.set(targets.positive.subarray(row * width, (row + 1) * width), i * width);
    difficult.set(targets.difficult.subarray(row * width, (row + 1) * width), i * width);
  });
  return { ...targets, positive, difficult };
}

/** Several target blocks of one kind and class count, one after another. */
export function concatTargets(parts: readonly Targets[], kind: Targets['kind'], classCount: number): Targets {
  for (const part of parts) {
    if (part.kind !== kind || part.classCount !== classCount) {
      throw new Error(`cannot join ${part.kind} targets over ${part.classCount} classes with ${kind} targets over ${classCount}`);
    }
  }
  if (kind === 'single-label') {
    const labels = concatArrays(
      parts.map((part) => (part as Extract<Targets, { kind: 'single-label' }>).labels),
      Int32Array,
    );
    return { kind, classCount, labels };
  }
  const multi = parts as readonly Extract<Targets, { kind: 'multi-label' }>[];
  return {
    kind,
    classCount,
    positive: concatArrays(
      multi.map((part) => part.positive),
      Uint8Array,
    ),
    difficult: concatArrays(
      multi.map((part) => part.difficult),
      Uint8Array,
    ),
  };
}

function concatArrays<A extends Int32Array | Uint8Array>(arrays: readonly A[], type: { new (length: number): A }): A {
  const joined = new type(arrays.reduce((total, array) => total + array.length, 0));
  let offset = 0;
  for (const array of arrays) {
    joined.set(array, offset);
    offset += array.length;
  }
  return joined;
}

/** Samples per class; for multi-label targets, the images where the class is positive. */
export function perClassCounts(targets: Targets): number[] {
  const counts = new Array<number>(targets.classCount).fill(0);
  if (targets.kind === 'single-label') {
    for (const label of targets.labels) counts[label]++;
  } else {
    targets.positive.forEach((value, i) => {
      counts[i % targets.classCount] += value;
    });
  }
  return counts;
}

/** One warning per class without a single image (a single-label class) or positive image (multi-label), naming where. */
export function emptyClassWarnings(classNames: readonly string[], counts: readonly number[], where: string): string[] {
  return classNames.flatMap((name, c) => (counts[c] === 0 ? [`class '${name}' has no images in ${where}`] : []));
}

/** Targets as a float tensor [count, classCount]: one-hot rows, or the multi-hot positives. */
export function targetsTensor(targets: Targets): HostTensor {
  const count = targetCount(targets);
  const tensor = hostTensor([count, targets.classCount]);
  if (targets.kind === 'multi-label') tensor.data.set(targets.positive);
  else for (const [row, label] of targets.labels.entries()) tensor.data[row * targets.classCount + label] = 1;
  return tensor;
}
