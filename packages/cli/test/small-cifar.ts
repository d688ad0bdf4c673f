import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedPath } from '../../../test-support/shared.js';
import { resnet20RunConfig } from './run-cli.js';

/** Bytes of one CIFAR-10 record: a label byte and 32×32 RGB planes. */
export const RECORD = 1 + 3 * 32 * 32;

/**
 * Small CIFAR-10 batch files in `work`, cut from the shared records (5 × 48 to train, 120 to test),
 * and `work/run.yaml` running ResNet-20 on them cut at layer3.1; `extra` lines are added to the config.
 */
export function writeSmallCifarRun(work: string, extra: readonly string[] = []): string {
  const records = readFileSync(sharedPath('data', 'cifar10', 'data_batch_1.first4000.bin'));
  const files = [...[1, 2, 3, 4, 5].map((b) => [`data_batch_${b}.bin`, (b - 1) * 48, 48] as const), ['test_batch.bin', 240, 120] as const];
  for (const [file, from, count] of files) {
    writeFileSync(join(work, file), records.subarray(from * RECORD, (from + count) * RECORD));
  }
  const config = join(work, 'run.yaml');
  writeFileSync(
    config,
    resnet20RunConfig(work, ['checkpointEvery: 2', 'seed: 3', 'training: { all: { epochs: 2, batchSize: 8 } }', ...extra]),
  );
  return config;
}
