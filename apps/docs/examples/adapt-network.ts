import {
  type Backend,
  compareMethods,
  forwardProgram,
  type Graph,
  type HostTensor,
  linearise,
  METHODS,
  type Method,
  type MethodResult,
  mapBatches,
  memorySource,
  OUTPUT,
  type TrainConfig,
} from '@gradfeat/core';

/** Images as the network expects them ([N, C, H, W]) and one-hot targets [N, classes]. */
export interface LabelledImages {
  readonly images: HostTensor;
  readonly targets: HostTensor;
}

/** The paper's comparison on one cut of a pre-trained network: activation, gradient, full, finetune. */
export async function adaptNetwork(
  backend: Backend,
  network: Graph,
  cut: string,
  data: { readonly train: LabelledImages; readonly test: LabelledImages },
  configs: Readonly<Record<Method, TrainConfig>>,
): Promise<MethodResult[]> {
  // BatchNorm folded into the convolutions, the network cut at `cut`, θ2 in NTK coordinates.
  const model = linearise(network, { cut });
  // θ1 is frozen, so it runs once per image; every method trains on its outputs.
  const trunk = forwardProgram(model.trunk);
  const cutValues = async (split: LabelledImages) =>
    memorySource(await mapBatches(backend, trunk, memorySource(split.images), 256, OUTPUT));
  return compareMethods({
    backend,
    model,
    loss: 'softmax-ce',
    train: { cut: await cutValues(data.train), targets: data.train.targets },
    test: { cut: await cutValues(data.test), targets: data.test.targets },
    methods: METHODS,
    configs,
  });
}
