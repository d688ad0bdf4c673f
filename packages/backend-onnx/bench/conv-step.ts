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
  BATCH_SCALE,
  type Backend,
  basicBlockNetwork,
  type Conv2DAttrs,
  featuresProgram,
  type HostTensor,
  hostTensor,
  INPUT,
  initialParams,
  inputShapesOf,
  linearise,
  median,
  normalTensor,
  type Program,
  Rng,
  type SignedProgram,
  TARGETS,
  tangentProgram,
  trainStepProgram,
} from '@gradfeat/core';
import { createOnnxBackend } from '../src/index.js';

const RUNS = Number(process.env.RUNS ?? 7);
const WARMUP = 2;

interface Timing {
  /** Median wall-clock seconds per run. */
  readonly wall: number;
  /** Median CPU seconds per run over all of ONNX Runtime's threads: steadier than wall time on a shared machine. */
  readonly cpu: number;
}

/** Times `program` fed with the `inputs` its signature names. */
async function time(backend: Backend, name: string, program: SignedProgram, inputs: Record<string, HostTensor>): Promise<Timing> {
  const compiled = await backend.compile(program, { name });
  const feed = Object.fromEntries(Object.keys(program.inputs).map((key) => [key, inputs[key]]));
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let run = 0; run < WARMUP + RUNS; run++) {
    const startCpu = process.cpuUsage();
    const start = performance.now();
    await compiled.run(feed);
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
  const inputs = { x: normalTensor(rng, [n, c, h, w]), w: normalTensor(rng, [c, c, 3, 3], 0.02), dy: normalTensor(rng, [n, c, h, w]) };
  const signed = (program: Program, outputs: SignedProgram['outputs']): SignedProgram => ({
    program,
    inputs: inputShapesOf(inputs, ['x', 'dy']),
    outputs,
  });
  const image = [-1, c, h, w];
  const filter = [c, c, 3, 3];
  const parts: [string, SignedProgram][] = [
    ['conv2d', signed((k, i) => ({ y: k.conv2d(i.x, i.w, undefined, same3x3) }), { y: image })],
    ['conv2dBackpropInput', signed((k, i) => ({ dx: k.conv2dBackpropInput(i.dy, i.w, [h, w], same3x3) }), { dx: image })],
    ['conv2dBackpropFilter', signed((k, i) => ({ dw: k.conv2dBackpropFilter(i.x, i.dy, filter, same3x3) }), { dw: filter })],
    [
      'all three',
      signed(
        (k, i) => ({
          y: k.conv2d(i.x, i.w, undefined, same3x3),
          dx: k.conv2dBackpropInput(i.dy, i.w, [h, w], same3x3),
          dw: k.conv2dBackpropFilter(i.x, i.dy, filter, same3x3),
        }),
        { y: image, dx: image, dw: filter },
      ),
    ],
  ];
  console.log(`(a) conv 3×3 on [${n}, ${c}, ${h}, ${w}]`);
  for (const [name, program] of parts) {
    console.log(`    ${name.padEnd(22)} ${format(await time(backend, name, program, inputs))}`);
  }
}

async function blockBenchmark(backend: Backend, rng: Rng): Promise<void> {
  const [n, channels, size, classes] = [64, 512, 7, 100];
  // ResNet-18's layer4 basic block (BatchNorm folded) and pooling; θ2 is all of it.
  const model = linearise(basicBlockNetwork({ channels, size, classes, seed: 2020 }), { cut: 'input' });
  const omegaBar = model.sourceClassifier;
  // Row r is labelled r mod classes.
  const targets = new Float32Array(n * classes).map((_, i) => (Math.floor(i / classes) % classes === i % classes ? 1 : 0));
  const direction = Object.fromEntries(
    [...initialParams(model, 'gradient', omegaBar)].map(([name, value]) => [name, normalTensor(rng, value.shape, 1e-3)]),
  );
  const feed: Record<string, HostTensor> = {
    [INPUT]: normalTensor(rng, [n, channels, size, size]),
    [TARGETS]: { shape: [n, classes], data: targets },
    [BATCH_SCALE]: hostTensor([1], [1 / n]),
    ...Object.fromEntries(initialParams(model, 'full', omegaBar)),
    ...direction,
  };
  const stages: readonly (readonly [string, SignedProgram])[] = [
    ['forward', featuresProgram(model)],
    ['forward+jvp', tangentProgram(model)],
    ['full step', trainStepProgram(model, 'full', omegaBar, 'softmax-ce')],
    ['finetune step', trainStepProgram(model, 'finetune', omegaBar, 'softmax-ce')],
  ];
  console.log(`(b) ResNet-18 layer4 basic block, batch ${n}, ${channels} channels at ${size}×${size}`);
  for (const [stage, program] of stages) {
    const inputs = stage === 'finetune step' ? { ...feed, ...Object.fromEntries(initialParams(model, 'finetune', omegaBar)) } : feed;
    const timing = await time(backend, `block ${stage}`, program, inputs);
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
