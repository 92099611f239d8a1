import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Tests spawn worker threads and child processes; forks keep them isolated per file.
    pool: 'forks',
    fileParallelism: false,
  },
});
