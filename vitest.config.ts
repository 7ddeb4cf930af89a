import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e tests spawn the CLI and real SDK clients; two cores only.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
