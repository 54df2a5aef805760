import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// @backplane/* resolve through the npm workspace links in node_modules to each lib's
// package.json `exports` (its src/index.ts): no alias list here (docs/adr/0038-workspaces.md).
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['apps/**/*.spec.ts', 'libs/**/*.spec.ts', 'test/**/*.spec.ts', 'scripts/**/*.spec.ts'],
    exclude: ['**/node_modules/**', 'dist/**', 'apps/portal/**'],
    globalSetup: ['./test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '.test-results/vitest.json' }]],
  },
});
