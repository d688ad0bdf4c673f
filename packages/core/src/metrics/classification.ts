import type { HostTensor } from '../tensor.js';

/** Fraction of rows whose label is among the k largest logits (ties count against the label). */
export function topKAccuracy(logits: HostTensor, labels: ArrayLike<number>, k: number): number {
  const [n, classes] = logits.shape;
  if (labels.length !== n) throw new Error(`${labels.length} labels for ${n} rows of logits`);
  if (n === 0) return Number.NaN;
  let hits = 0;
  for (let row = 0; row < n; row++) {
    const base = row * classes;
    const target = logits.data[base + labels[row]];
    let higher = 0;
    for (let c = 0; c < classes; c++) {
      const v = logits.data[base + c];
      if (v > target || (v === target && c < labels[row])) higher++;
    }
    if (higher < k) hits++;
  }
  return hits / n;
}

/**
 * Average precision of one class from scores and ground truth (1 positive, 0 negative, −1 ignored,
 * e.g. VOC "difficult"). 'voc07': the VOC2007 devkit's 11-point interpolation (mean over recall
 * thresholds 0, 0.1, …, 1 of the best precision at recall ≥ threshold). 'area': area under the
 * monotone precision envelope, as the VOC2010+ devkit and most libraries compute it.
 */
export function averagePrecision(scores: ArrayLike<number>, truth: ArrayLike<number>, definition: 'voc07' | 'area'): number {
  const order = Array.from({ length: scores.length }, (_, i) => i)
    .filter((i) => truth[i] !== -1)
    .sort((a, b) => scores[b] - scores[a]);
  const positives = order.reduce((count, i) => count + (truth[i] === 1 ? 1 : 0), 0);
  if (positives === 0) return Number.NaN;
  const recall: number[] = [];
  const precision: number[] = [];
  let truePositives = 0;
  order.forEach((i, rank) => {
    if (truth[i] === 1) truePositives++;
    recall.push(truePositives / positives);
    precision.push(truePositives / (rank + 1));
  });
  if (definition === 'voc07') {
    let sum = 0;
    for (let t = 0; t <= 10; t++) {
      let best = 0;
      for (let j = 0; j < recall.length; j++) if (recall[j] >= t / 10 - 1e-12) best = Math.max(best, precision[j]);
      sum += best;
    }
    return sum / 11;
  }
  let area = 0;
  let envelope = 0;
  for (let j = recall.length - 1; j >= 0; j--) {
    envelope = Math.max(envelope, precision[j]);
    const previousRecall = j === 0 ? 0 : recall[j - 1];
    area += (recall[j] - previousRecall) * envelope;
  }
  return area;
}

/** Per-class AP and their mean over classes that have positives. truth: [N, K] of 1 / 0 / −1. */
export function meanAveragePrecision(
  scores: HostTensor,
  truth: HostTensor,
  definition: 'voc07' | 'area',
): { perClass: number[]; mean: number } {
  const [n, classes] = scores.shape;
  const perClass: number[] = [];
  for (let c = 0; c < classes; c++) {
    const column = (t: HostTensor) => Array.from({ length: n }, (_, row) => t.data[row * classes + c]);
    perClass.push(averagePrecision(column(scores), column(truth), definition));
  }
  const valid = perClass.filter((ap) => !Number.isNaN(ap));
  return { perClass, mean: valid.reduce((a, b) => a + b, 0) / valid.length };
}
