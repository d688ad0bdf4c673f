import { describe, expect, it } from 'vitest';
import {
  attachClassifier,
  createReferenceBackend,
  cutNetwork,
  cutPoints,
  effectiveParams,
  foldBatchNorm,
  forwardProgram,
  type Graph,
  type HostTensor,
  INPUT,
  inferShapes,
  normalTensor,
  ntkParametrisation,
  OUTPUT,
  Rng,
  reinitialise,
  relativeError,
  runProgramOnce,
  smallCnn,
} from '../src/index.js';

const backend = createReferenceBackend();

async function run(graph: Graph, input: HostTensor): Promise<HostTensor> {
  return (await runProgramOnce(backend, forwardProgram(graph), { [INPUT]: input }, 'test'))[OUTPUT];
}

/** conv → BN → ReLU → conv → BN, + a skip from the first ReLU, ReLU, pool, classifier. */
function residualNet(rng: Rng): Graph {
  const params = new Map<string, HostTensor>([
    ['c1.weight', normalTensor(rng, [4, 3, 3, 3], 0.4)],
    ['c2.weight', normalTensor(rng, [4, 4, 3, 3], 0.3)],
    ['c2.bias', normalTensor(rng, [4])],
    ['fc.weight', normalTensor(rng, [5, 4])],
    ['fc.bias', normalTensor(rng, [5])],
  ]);
  for (const bn of ['bn1', 'bn2']) {
    params.set(`${bn}.scale`, normalTensor(rng, [4]));
    params.set(`${bn}.bias`, normalTensor(rng, [4]));
    params.set(`${bn}.mean`, normalTensor(rng, [4]));
    params.set(`${bn}.variance`, { shape: [4], data: normalTensor(rng, [4]).data.map((v) => 0.5 + v * v) });
  }
  const conv = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 } as const;
  const bnParams = (bn: string) => ({ scale: `${bn}.scale`, bias: `${bn}.bias`, mean: `${bn}.mean`, variance: `${bn}.variance` });
  return {
    inputs: [{ name: 'x', shape: [-1, 3, 6, 6] }],
    nodes: [
      { name: 'c1', op: 'Conv2D', inputs: ['x'], attrs: conv, params: { weight: 'c1.weight' } },
      { name: 'bn1', op: 'BatchNorm', inputs: ['c1'], attrs: { epsilon: 1e-5 }, params: bnParams('bn1') },
      { name: 'r1', op: 'ReLU', inputs: ['bn1'], attrs: {}, params: {} },
      { name: 'c2', op: 'Conv2D', inputs: ['r1'], attrs: conv, params: { weight: 'c2.weight', bias: 'c2.bias' } },
      { name: 'bn2', op: 'BatchNorm', inputs: ['c2'], attrs: { epsilon: 1e-5 }, params: bnParams('bn2') },
      { name: 'sum', op: 'Add', inputs: ['bn2', 'r1'], attrs: {}, params: {} },
      { name: 'r2', op: 'ReLU', inputs: ['sum'], attrs: {}, params: {} },
      { name: 'pool', op: 'GlobalAvgPool', inputs: ['r2'], attrs: {}, params: {} },
      { name: 'flat', op: 'Flatten', inputs: ['pool'], attrs: {}, params: {} },
      { name: 'fc', op: 'Dense', inputs: ['flat'], attrs: {}, params: { weight: 'fc.weight', bias: 'fc.bias' } },
    ],
    outputs: ['fc'],
    params,
  };
}

describe('foldBatchNorm', () => {
  it('removes every BatchNorm that follows a conv and keeps the function (float64 reference, 1e-6)', async () => {
    const rng = new Rng(3);
    const network = residualNet(rng);
    const folded = foldBatchNorm(network);
    expect(folded.nodes.some((n) => n.op === 'BatchNorm')).toBe(false);
    expect(folded.nodes.map((n) => n.name)).toContain('bn1');
    const input = normalTensor(rng, [2, 3, 6, 6]);
    const error = relativeError((await run(folded, input)).data, (await run(network, input)).data);
    expect(error.relative).toBeLessThan(1e-6);
  });

  it('leaves a BatchNorm whose conv output is also used elsewhere', () => {
    const network = residualNet(new Rng(1));
    const shared: Graph = { ...network, nodes: network.nodes.map((n) => (n.name === 'sum' ? { ...n, inputs: ['bn2', 'c1'] } : n)) };
    expect(
      foldBatchNorm(shared)
        .nodes.filter((n) => n.op === 'BatchNorm')
        .map((n) => n.name),
    ).toEqual(['bn1']);
  });
});

describe('cutNetwork and cutPoints', () => {
  const network = foldBatchNorm(residualNet(new Rng(5)));

  it('splits into trunk, head and classifier whose composition is the network', async () => {
    const split = cutNetwork(network, 'r2');
    expect(split.trunk.outputs).toEqual(['r2']);
    expect(split.head.inputs.map((i) => i.name)).toEqual(['r2']);
    expect(split.features).toBe('flat');
    expect(split.classifier.weight.shape).toEqual([5, 4]);
    const input = normalTensor(new Rng(8), [3, 3, 6, 6]);
    const z = await run(split.trunk, input);
    const features = await run(split.head, z);
    const full = await run({ ...network, outputs: ['flat'], nodes: network.nodes.slice(0, -1) }, input);
    expect(relativeError(features.data, full.data).relative).toBeLessThan(1e-7);
  });

  it('refuses a cut that a skip connection crosses, naming the node', () => {
    expect(() => cutNetwork(network, 'bn2')).toThrow(/'sum' after the cut also reads 'r1'/);
    expect(() => cutNetwork(network, 'nope')).toThrow(/cannot cut at 'nope'/);
  });

  it('lists exactly the valid cut points with the size of θ2', () => {
    const points = cutPoints(network);
    expect(points.map((p) => p.name)).toEqual(['x', 'bn1', 'r1', 'sum', 'r2', 'pool', 'flat']);
    const c2 = 4 * 4 * 9 + 4;
    expect(points.find((p) => p.name === 'r1')?.headParameters).toBe(c2);
    expect(points.find((p) => p.name === 'x')?.headParameters).toBe(4 * 3 * 9 + 4 + c2);
    expect(points.find((p) => p.name === 'flat')?.headParameters).toBe(0);
  });

  it('needs a final Dense classifier', () => {
    const headless: Graph = { ...network, nodes: network.nodes.slice(0, -1), outputs: ['flat'] };
    expect(() => cutNetwork(headless, 'r1')).toThrow(/ends in a Dense classifier/);
  });
});

describe('NTK parametrisation', () => {
  it('stores weight / √(1/C_out) and bias / √0.1, and the effective values reproduce the network', () => {
    const head = cutNetwork(foldBatchNorm(residualNet(new Rng(2))), 'r1').head;
    const { graph, scales } = ntkParametrisation(head);
    expect(scales.get('c2.weight')).toBeCloseTo(Math.sqrt(1 / 4), 12);
    expect(scales.get('c2.bias')).toBeCloseTo(Math.sqrt(0.1), 12);
    const stored = graph.params.get('c2.weight') as HostTensor;
    const original = head.params.get('c2.weight') as HostTensor;
    expect(stored.data[7]).toBeCloseTo(original.data[7] / Math.sqrt(1 / 4), 5);
    const effective = effectiveParams(graph, scales);
    for (const key of ['c2.weight', 'c2.bias']) {
      expect(relativeError((effective.get(key) as HostTensor).data, (head.params.get(key) as HostTensor).data).relative).toBeLessThan(1e-6);
    }
  });
});

describe('reinitialise', () => {
  it('is reproducible from the seed, He-scaled, and resets BatchNorm to the identity', () => {
    const network = residualNet(new Rng(4));
    const a = reinitialise(network, new Rng(11));
    const b = reinitialise(network, new Rng(11));
    const c = reinitialise(network, new Rng(12));
    const weight = (g: Graph) => (g.params.get('c2.weight') as HostTensor).data;
    expect(weight(a)).toEqual(weight(b));
    expect(weight(a)).not.toEqual(weight(c));
    const std = Math.sqrt(weight(a).reduce((s, v) => s + v * v, 0) / weight(a).length);
    expect(std).toBeGreaterThan(0.5 * Math.sqrt(2 / 36));
    expect(std).toBeLessThan(1.5 * Math.sqrt(2 / 36));
    expect([...(a.params.get('bn1.scale') as HostTensor).data]).toEqual([1, 1, 1, 1]);
    expect([...(a.params.get('bn1.mean') as HostTensor).data]).toEqual([0, 0, 0, 0]);
  });

  it('smallCnn builds a valid network', () => {
    const net = smallCnn({ input: [1, 12, 12], channels: [4, 8], strides: [1, 2], classes: 3, seed: 1 });
    expect(inferShapes(net).get('block2')).toEqual([-1, 8, 6, 6]);
    expect(inferShapes(net).get('classifier')).toEqual([-1, 3]);
  });
});

describe('attachClassifier', () => {
  const net = smallCnn({ input: [1, 12, 12], channels: [4, 8], strides: [1, 2], classes: 3, seed: 1 });
  /** The network up to its features, as a trunk shipped without its classifier is. */
  const features: Graph = {
    ...net,
    nodes: net.nodes.filter((n) => n.name !== 'classifier'),
    outputs: ['features'],
    params: new Map([...net.params].filter(([key]) => !key.startsWith('classifier.'))),
  };

  it('ends a features-only network in a zero classifier, so that it cuts into the same trunk and head', async () => {
    const attached = attachClassifier(features, 5);
    expect(inferShapes(attached).get('classifier')).toEqual([-1, 5]);
    expect([...(attached.params.get('classifier.weight')?.data ?? [])].every((v) => v === 0)).toBe(true);
    const [ours, theirs] = [cutNetwork(attached, 'block1'), cutNetwork(net, 'block1')];
    expect(ours.features).toBe(theirs.features);
    expect(ours.head.nodes).toEqual(theirs.head.nodes);
    expect(ours.classifier.weight.shape).toEqual([5, 8]);
    const input = normalTensor(new Rng(2), [2, 1, 12, 12]);
    expect(relativeError((await run(ours.trunk, input)).data, (await run(theirs.trunk, input)).data).relative).toBe(0);
  });

  it('refuses outputs that are not [batch, features], names in use and class counts below one', () => {
    expect(() => attachClassifier({ ...features, outputs: ['block2'] }, 2)).toThrow(
      "a classifier reads features [batch, F], but the network's output 'block2' is [-1, 8, 6, 6]",
    );
    expect(() => attachClassifier(net, 2)).toThrow('the network already uses the name');
    expect(() => attachClassifier(features, 0)).toThrow('a classifier needs a whole number of classes ≥ 1, got 0');
  });
});
