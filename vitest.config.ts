import { defineConfig } from 'vitest/config';

// Two projects: `unit` (everything fast, the default for `npm test`) and the long
// deterministic simulation, which `npm test` also runs (CI needs its 10,000 schedules)
// but which can be run alone with `npm run sim`.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['*/test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '*/test/**/*.sim.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'sim',
          include: ['*/test/**/*.sim.test.ts'],
          testTimeout: 1_200_000,
        },
      },
    ],
  },
});
