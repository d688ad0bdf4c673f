/**
 * A `gradfeat worker` for the per-step measurement of bench/cluster.ts: the same worker loop, with a
 * resolver that builds the benchmark's synthetic heads (random weights and inputs, in memory) instead
 * of reading a run's files.
 *
 *   node --conditions=source --import tsx packages/cli/bench/cluster-worker.ts redis://127.0.0.1:6379
 */
import { createOnnxBackend } from '@gradfeat/backend-onnx';
import { linearise, memorySource, normalTensor, oneHot, Rng } from '@gradfeat/core';
import { startWorker } from '@gradfeat/distributed';
import { BENCH_HEADS, type BenchHead } from './cluster-heads.js';

const [redis] = process.argv.slice(2);
const backend = await createOnnxBackend();
await startWorker({
  redis,
  resolver: {
    async prepare(context) {
      const { head, rows } = context.config as { head: BenchHead; rows: number };
      const model = linearise(BENCH_HEADS[head](0), { cut: 'input' });
      const rng = new Rng(1);
      const classes = model.sourceClassifier.weight.shape[0];
      const data = {
        inputs: memorySource(normalTensor(rng, [rows, ...model.cutShape])),
        targets: oneHot(
          Array.from({ length: rows }, () => rng.int(classes)),
          classes,
        ),
      };
      return {
        cacheFill: () => Promise.reject(new Error('the benchmark worker writes no cache')),
        trainingRequest: async (training, omegaBar) => ({
          backend,
          model,
          omegaBar,
          loss: 'softmax-ce',
          data,
          method: (training as { method: 'full' }).method,
        }),
        dispose: async () => {},
      };
    },
  },
  log: (event) => process.stderr.write(`${JSON.stringify(event)}\n`),
});
process.stderr.write(`${JSON.stringify({ event: 'ready', pid: process.pid })}\n`);
