import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their TypeScript sources in tests (see each package's exports).
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Tests that load onnxruntime-node directly: no telemetry files in /tmp or the user's cache (see backend-onnx's ort-telemetry.ts).
    env: { ORT_DISABLE_TELEMETRY: '1' },
    reporters: ['default', './test-support/summary-reporter.ts'],
    globalSetup: ['./test-support/global-setup.ts'],
  },
});
