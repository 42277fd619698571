// ESLint flat config. Besides the recommended TypeScript rules it enforces the
// project rule that time, randomness and I/O appear only at the edges
// (`src/io/` and `src/bin/` of each package): see CONVENTIONS.md item 2.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const edgeOnly = 'only in src/io/ or src/bin/ (inject it; CONVENTIONS.md item 2)';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/testdata/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['*/src/**/*.ts'],
    ignores: ['*/src/io/**', '*/src/bin/**', '*/src/bench/**', 'test/src/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: `Date.now ${edgeOnly}` },
        { object: 'Math', property: 'random', message: `Math.random ${edgeOnly}` },
        { object: 'performance', property: 'now', message: `performance.now ${edgeOnly}` },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: `timers ${edgeOnly}` },
        { name: 'setInterval', message: `timers ${edgeOnly}` },
        { name: 'setImmediate', message: `timers ${edgeOnly}` },
      ],
      'no-restricted-imports': [
        'error',
        {
          paths: ['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'better-sqlite3', '@grpc/grpc-js']
            .map((name) => ({ name, message: `${name} ${edgeOnly}` })),
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
