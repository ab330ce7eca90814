// ESLint for rhumb's TypeScript, run by `npm test` (scripts/test.sh) before the tests;
// `npx eslint .` alone. typescript-eslint's recommended rules, syntax-only: no type
// information, so it stays fast. The browser code of the console (plain JS) is not linted.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'native/', 'bench/results/', 'src/console/static/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // `_name` marks a binding kept on purpose (callback shapes, destructuring).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A `let` read by a closure made before its one assignment (release/unsubscribe pairs)
      // cannot be a `const` at the assignment without a temporal-dead-zone hazard.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Tests stay as written (issue #19 changes no test beyond imports): a two-space regex
    // matching rendered text reads better than ` {2}`, and a setup value kept in a
    // variable that is reassigned before it is read documents the step.
    files: ['test/**/*.ts'],
    rules: {
      'no-regex-spaces': 'off',
      'no-useless-assignment': 'off',
    },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
  },
);
