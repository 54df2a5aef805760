// @ts-check
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const root = dirname(fileURLToPath(import.meta.url));

/** Which app or lib a file belongs to: ['apps', 'api'] or ['libs', 'db'], or undefined. */
function unitOf(file) {
  const parts = relative(root, file).split(sep);
  return parts[0] === 'apps' || parts[0] === 'libs' ? [parts[0], parts[1]] : undefined;
}

/**
 * Module boundaries: a lib is used only through its index.ts (`@backplane/x`), never by
 * a deep path; no app imports another app; libs never import apps.
 */
const boundaries = {
  meta: { type: 'problem', schema: [], messages: { deep: '{{why}}' } },
  create(context) {
    const file = context.filename;
    const from = unitOf(file);
    function check(node, source) {
      if (typeof source !== 'string') return;
      const report = (why) => context.report({ node, messageId: 'deep', data: { why } });
      const alias = /^@backplane\/([^/]+)(\/.+)?$/.exec(source);
      if (alias) {
        if (existsSync(join(root, 'apps', alias[1])))
          report(`"${source}" is an app (apps/${alias[1]}): an app or lib must not import another app.`);
        else if (alias[2])
          report(`Deep import "${source}": import from "@backplane/${alias[1]}" (the lib's index.ts) only.`);
        return;
      }
      if (!source.startsWith('.')) return;
      const target = resolve(dirname(file), source);
      const to = unitOf(target);
      if (!to || !from || (to[0] === from[0] && to[1] === from[1])) return;
      if (to[0] === 'apps')
        report(`"${source}" reaches into apps/${to[1]}: an app or lib must not import another app.`);
      else report(`Deep import "${source}" into libs/${to[1]}: use "@backplane/${to[1]}".`);
    }
    return {
      ImportDeclaration: (n) => check(n, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
      ExportAllDeclaration: (n) => check(n, n.source.value),
      ImportExpression: (n) => n.source.type === 'Literal' && check(n, n.source.value),
    };
  },
};

/**
 * Only libs/db speaks SQL (ADR 0030): a `.query(` call anywhere else is a statement that
 * belongs in a repository under libs/db/src/repositories. Exempt (see the config below):
 * tests and test helpers that set up or inspect rows on purpose, benchmarks and dev scripts.
 */
const sqlOnlyInDb = {
  meta: { type: 'problem', schema: [], messages: { sql: '{{why}}' } },
  create(context) {
    const unit = unitOf(context.filename);
    if (unit && unit[0] === 'libs' && unit[1] === 'db') return {};
    return {
      'CallExpression > MemberExpression.callee[property.name="query"]'(node) {
        context.report({
          node,
          messageId: 'sql',
          data: {
            why: 'SQL outside libs/db: add a method to a repository in libs/db/src/repositories and call that (ADR 0030).',
          },
        });
      },
    };
  },
};

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      '.data/**',
      '.test-results/**',
      'apps/portal/dist/**',
      'apps/portal/src/generated/**',
      '**/*.mjs',
      '**/*.mts',
      '**/*.cjs',
      '**/*.js',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    plugins: { backplane: { rules: { boundaries, 'sql-only-in-db': sqlOnlyInDb } } },
    rules: {
      'backplane/boundaries': 'error',
      'backplane/sql-only-in-db': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-confusing-void-expression': 'off',
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='env']",
          message: 'Read configuration through @backplane/config (process.env is read in one place only).',
        },
      ],
    },
  },
  {
    files: ['libs/config/src/load.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    // Tests and their helpers create and inspect rows on purpose (RLS, migrations, fixtures);
    // benchmarks and dev scripts seed data. Product code has no exemption.
    files: ['**/*.spec.ts', 'test/**/*.ts', 'libs/testing/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'backplane/sql-only-in-db': 'off' },
  },
  {
    files: ['**/*.spec.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-empty-function': 'off',
    },
  },
);
