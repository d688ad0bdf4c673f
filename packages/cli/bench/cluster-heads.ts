import { mobileNetBlock13, resnet18Layer4 } from '@gradfeat/core';

/** The heads of bench/cluster.ts's per-step measurement: experiment 1's θ2 and a ResNet-18 layer4 block. */
export const BENCH_HEADS = { 'mobilenet-block13': mobileNetBlock13, 'resnet18-layer4': resnet18Layer4 } as const;
export type BenchHead = keyof typeof BENCH_HEADS;
