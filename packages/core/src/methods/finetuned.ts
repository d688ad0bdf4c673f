import type { Graph } from '../ir/graph.js';
import type { HostTensor } from '../tensor.js';
import type { TrainState } from '../train/trainer.js';
import { finalClassifier } from '../transforms/cut.js';
import type { LinearisedModel } from './linearised-model.js';
import { B1, theta2Name, W1 } from './programs.js';

/** The network with a fine-tuning run's θ2 (as effective values) and classifier written back. */
export function applyFinetuned(network: Graph, model: LinearisedModel, state: TrainState): Graph {
  if (state.method !== 'finetune') throw new Error(`only a 'finetune' run changes the network; this run is '${state.method}'`);
  const params = new Map(network.params);
  const trained = (name: string): HostTensor => {
    const value = state.params.get(name);
    if (!value) throw new Error(`the fine-tuning run has no parameter '${name}'`);
    return value;
  };
  for (const key of model.headParamKeys) {
    if (!params.has(key)) throw new Error(`θ2 parameter '${key}' is not in the network (was BatchNorm folded differently?)`);
    const scale = model.finetuneScales.get(key) ?? 1;
    const stored = trained(theta2Name(key));
    params.set(key, { shape: stored.shape, data: stored.data.map((v) => v * scale) });
  }
  const classifier = finalClassifier(network);
  params.set(classifier.params.weight, trained(W1));
  if (classifier.params.bias) params.set(classifier.params.bias, trained(B1));
  return { ...network, params };
}
