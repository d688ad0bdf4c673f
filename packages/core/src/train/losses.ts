import type { Kernels } from '../backend/kernels.js';

/**
 * softmax-ce: single-label softmax cross-entropy, targets one-hot (or soft) [N, K].
 * sigmoid-bce: multi-label per-class sigmoid cross-entropy, targets 0/1 [N, K] with a mask that
 * is 0 for entries to ignore (e.g. VOC "difficult"). Both average over the batch via `batchScale`
 * (= 1/N, an input so that one traced graph serves every batch size).
 */
export type LossKind = 'softmax-ce' | 'sigmoid-bce';

/** A loss and its gradient with respect to the logits. */
export interface LossTerms<T> {
  /** [1] */
  readonly loss: T;
  /** ∂loss/∂logits [N, K] */
  readonly dlogits: T;
}

/** The loss and its gradient with respect to the logits, as kernel calls. */
export function lossAndGradient<T>(k: Kernels<T>, kind: LossKind, logits: T, targets: T, batchScale: T, mask?: T): LossTerms<T> {
  if (kind === 'softmax-ce') {
    const shifted = k.sub(logits, k.max(logits, [1], true));
    const logProbs = k.sub(shifted, k.log(k.sum(k.exp(shifted), [1], true)));
    return {
      loss: k.mul(k.sum(k.mul(targets, logProbs), [0, 1], false), k.mul(batchScale, k.scalar(-1))),
      dlogits: k.mul(k.sub(k.exp(logProbs), targets), batchScale),
    };
  }
  // max(x,0) − x·y + log(1 + e^−|x|) is the stable form of −y log σ(x) − (1−y) log(1−σ(x)).
  const perEntry = k.add(
    k.sub(k.maximum(logits, k.scalar(0)), k.mul(logits, targets)),
    k.log(k.add(k.scalar(1), k.exp(k.mul(k.abs(logits), k.scalar(-1))))),
  );
  const probabilities = k.div(k.scalar(1), k.add(k.scalar(1), k.exp(k.mul(logits, k.scalar(-1)))));
  const weight = mask ?? k.add(k.mul(targets, k.scalar(0)), k.scalar(1));
  return {
    loss: k.mul(k.sum(k.mul(perEntry, weight), [0, 1], false), batchScale),
    dlogits: k.mul(k.mul(k.sub(probabilities, targets), weight), batchScale),
  };
}
