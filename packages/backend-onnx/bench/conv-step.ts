/**
 * How fast the ONNX Runtime backend trains convolutions, the reason it exists.
 *   (a) conv2d and both of its transposes on [64, 256, 8, 8] with a 3×3 filter;
 *   (b) a ResNet-18 layer4 basic block (two 3×3 convs, 512 channels at 7×7, identity shortcut,
 *       batch 64): forward, tangent (JVP) and backward, as gradfeat's full model trains it.
 * Each program is compiled once and timed as the median of RUNS runs after WARMUP runs.
 * Run from the repository root: npx tsx --conditions=source packages/backend-onnx/bench/conv-step.ts
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  type Backend,
  backward,
  type Conv2DAttrs,
  constantParams,
  evaluate,
  type Graph,
  type HostTensor,
  hostTensor,
  jvp,
  type Kernels,
  type Node,
  type Program,
  Rng,
  type Shape,
} from '@gradfeat/core';
import { createOnnxBackend } from '../src/index.js';

const RUNS = Number(process.env.RUNS ?? 7);
const WARMUP = 2;

function randomTensor(rng: Rng, shape: readonly number[], scale = 1): HostTensor {
  const value = hostTensor(shape);
  for (let i = 0; i < value.data.length; i++) value.data[i] = scale * rng.normal();
  return value;
}

interface Timing {
  /** Median wall-clock seconds per run. */
  readonly wall: number;
  /** Median CPU seconds per run over all of ONNX Runtime's threads: steadier than wall time on a shared machine. */
  readonly cpu: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function time(
  backend: Backend,
  name: string,
  program: Program,
  inputs: Record<string, HostTensor>,
  batchInputs: readonly string[],
): Promise<Timing> {
  const shapes: Record<string, Shape> = {};
  for (const [key, value] of Object.entries(inputs)) shapes[key] = batchInputs.includes(key) ? [-1, ...value.shape.slice(1)] : value.shape;
  const compiled = await backend.compile(program, shapes, { name });
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run < WARMUP + RUNS; run++) {
    const startCpu = process.cpuUsage();
    const start = performance.now();
    await compiled.run(inputs);
    const used = process.cpuUsage(startCpu);
    if (run >= WARMUP) {
      wall.push((performance.now() - start) / 1000);
      cpu.push((used.user + used.system) / 1e6);
    }
  }
  compiled.dispose();
  return { wall: median(wall), cpu: median(cpu) };
}

function format({ wall, cpu }: Timing): string {
  return `${wall.toFixed(3)} s wall, ${cpu.toFixed(3)} s CPU`;
}

const same3x3: Conv2DAttrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], groups: 1 };

async function convBenchmark(backend: Backend, rng: Rng): Promise<void> {
  const [n, c, h, w] = [64, 256, 8, 8];
  const inputs = { x: randomTensor(rng, [n, c, h, w]), w: randomTensor(rng, [c, c, 3, 3], 0.02), dy: randomTensor(rng, [n, c, h, w]) };
  const batch = ['x', 'dy'];
  const parts: [string, Program][] = [
    ['conv2d', (k, i) => ({ y: k.conv2d(i.x, i.w, undefined, same3x3) })],
    ['conv2dBackpropInput', (k, i) => ({ dx: k.conv2dBackpropInput(i.dy, i.w, [h, w], same3x3) })],
    ['conv2dBackpropFilter', (k, i) => ({ dw: k.conv2dBackpropFilter(i.x, i.dy, [c, c, 3, 3], same3x3) })],
    [
      'all three',
      (k, i) => ({
        y: k.conv2d(i.x, i.w, undefined, same3x3),
        dx: k.conv2dBackpropInput(i.dy, i.w, [h, w], same3x3),
        dw: k.conv2dBackpropFilter(i.x, i.dy, [c, c, 3, 3], same3x3),
      }),
    ],
  ];
  console.log(`(a) conv 3×3 on [${n}, ${c}, ${h}, ${w}]`);
  for (const [name, program] of parts) {
    console.log(`    ${name.padEnd(22)} ${format(await time(backend, name, program, inputs, batch))}`);
  }
}

/** ResNet-18's layer4 basic block with BatchNorm folded into the convs, then pooling to features. */
function basicBlock(rng: Rng, channels: number, size: number): Graph {
  const params = new Map<string, HostTensor>();
  const conv = (name: string, input: string): Node<'Conv2D'> => {
    params.set(`${name}.weight`, randomTensor(rng, [channels, channels, 3, 3], Math.sqrt(2 / (9 * channels))));
    params.set(`${name}.bias`, randomTensor(rng, [channels], 0.1));
    return { name, op: 'Conv2D', inputs: [input], attrs: same3x3, params: { weight: `${name}.weight`, bias: `${name}.bias` } };
  };
  const simple = (name: string, op: 'ReLU' | 'Add' | 'GlobalAvgPool' | 'Flatten', inputs: string[]): Node => ({
    name,
    op,
    inputs,
    attrs: {},
    params: {},
  });
  return {
    inputs: [{ name: 'z0', shape: [-1, channels, size, size] }],
    nodes: [
      conv('conv1', 'z0'),
      simple('relu1', 'ReLU', ['conv1']),
      conv('conv2', 'relu1'),
      simple('residual', 'Add', ['conv2', 'z0']),
      simple('relu2', 'ReLU', ['residual']),
      simple('pool', 'GlobalAvgPool', ['relu2']),
      simple('features', 'Flatten', ['pool']),
    ],
    outputs: ['features'],
    params,
  };
}

/**
 * One training step of the full model ĝ = w1ᵀf + ω̄ᵀJw2: the block's forward and tangent passes,
 * then, from the logits' cotangent, the gradients of w1 and (transposing the tangent pass) of w2.
 */
function blockStep(graph: Graph, stage: 'forward' | 'forward+jvp' | 'step'): Program {
  const paramKeys = [...graph.params.keys()];
  return <T>(k: Kernels<T>, inputs: Readonly<Record<string, T>>): Record<string, T> => {
    const params = constantParams(k, graph);
    const primals = evaluate(k, graph, { z0: inputs.z0 }, params);
    const features = primals.get('features') as T;
    if (stage === 'forward') return { features };
    const direction = Object.fromEntries(paramKeys.map((key) => [key, inputs[`w2:${key}`]]));
    const tangent = jvp(k, graph, primals, params, direction).get('features') as T;
    const logits = k.add(k.matMul(features, inputs.w1, false, true), k.matMul(tangent, inputs.omega, false, true));
    if (stage === 'forward+jvp') return { logits };
    const gradW1 = k.matMul(inputs.dlogits, features, true, false);
    const dTangent = k.matMul(inputs.dlogits, inputs.omega, false, false);
    const gradW2 = backward(k, graph, primals, params, { features: dTangent }, { params: paramKeys }).params;
    return { logits, gradW1, ...Object.fromEntries(Object.entries(gradW2).map(([key, grad]) => [`grad:w2:${key}`, grad])) };
  };
}

async function blockBenchmark(backend: Backend, rng: Rng): Promise<void> {
  const [n, channels, size, classes] = [64, 512, 7, 100];
  const graph = basicBlock(rng, channels, size);
  const inputs: Record<string, HostTensor> = {
    z0: randomTensor(rng, [n, channels, size, size]),
    w1: randomTensor(rng, [classes, channels], 0.05),
    omega: randomTensor(rng, [classes, channels], 0.05),
    dlogits: randomTensor(rng, [n, classes], 1 / n),
  };
  for (const [key, value] of graph.params) inputs[`w2:${key}`] = randomTensor(rng, value.shape, 1e-3);
  console.log(`(b) ResNet-18 layer4 basic block, batch ${n}, ${channels} channels at ${size}×${size}`);
  for (const stage of ['forward', 'forward+jvp', 'step'] as const) {
    const timing = await time(backend, `block ${stage}`, blockStep(graph, stage), inputs, ['z0', 'dlogits']);
    console.log(`    ${stage.padEnd(22)} ${format(timing)}, ${(n / timing.wall).toFixed(1)} images/s`);
  }
}

const threads = process.env.THREADS ? Number(process.env.THREADS) : undefined;
const backend = await createOnnxBackend({ intraOpNumThreads: threads });
console.log(
  `${backend.name}, ${threads ?? 'all'} threads, median of ${RUNS} runs after ${WARMUP} warm-up runs; load average ${loadavg()[0].toFixed(1)}`,
);
const rng = new Rng(2020);
await convBenchmark(backend, rng);
await blockBenchmark(backend, rng);
