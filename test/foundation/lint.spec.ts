import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ESLint } from 'eslint';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');
const eslint = new ESLint({ cwd: root });
// Type-aware rules need real files inside the project: fixtures live in git-ignored
// `apps/__lint_fixture__` and `libs/__lint_fixture__` folders for the duration of the test.
const fixtureDirs = [join(root, 'apps', '__lint_fixture__'), join(root, 'libs', '__lint_fixture__')];
afterAll(() => {
  for (const d of fixtureDirs) rmSync(d, { recursive: true, force: true });
});

async function rules(file: string, code: string): Promise<string[]> {
  const path = join(
    root,
    file
      .replace(/^(apps|libs)\/[^/]+\//, '$1/__lint_fixture__/')
      .replace(/\.ts$/, `_${randomBytes(4).toString('hex')}.ts`),
  );
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, code);
  const [result] = await eslint.lintFiles([path]);
  return result!.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

describe('lint rules that guard the architecture', { timeout: 180_000 }, () => {
  it('rejects a deep import into a lib by alias or by path', async () => {
    expect(
      await rules(
        'apps/api/src/x.ts',
        `import { Keyring } from '@backplane/crypto/src/envelope';\nexport const k = Keyring;\n`,
      ),
    ).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/backplane\/boundaries: Deep import "@backplane\/crypto\/src\/envelope"/),
      ]),
    );
    expect(
      await rules(
        'apps/api/src/x.ts',
        `import { Keyring } from '../../../libs/crypto/src/envelope';\nexport const k = Keyring;\n`,
      ),
    ).toEqual(expect.arrayContaining([expect.stringMatching(/Deep import .* into libs\/crypto/)]));
  });

  it('rejects one app importing another', async () => {
    expect(
      await rules(
        'apps/api/src/x.ts',
        `import { GatewayModule } from '../../gateway/src/gateway.module';\nexport const m = GatewayModule;\n`,
      ),
    ).toEqual(expect.arrayContaining([expect.stringMatching(/reaches into apps\/gateway/)]));
    // by its workspace package name too
    expect(
      await rules('libs/crypto/src/x.ts', `import * as gw from '@backplane/gateway';\nexport const m = gw;\n`),
    ).toEqual(expect.arrayContaining([expect.stringMatching(/"@backplane\/gateway" is an app/)]));
  });

  it('rejects a floating promise', async () => {
    const code = `async function work(): Promise<void> {}\nexport function run(): void {\n  work();\n}\n`;
    expect(await rules('libs/crypto/src/x.ts', code)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^@typescript-eslint\/no-floating-promises/)]),
    );
  });

  it('rejects process.env outside libs/config', async () => {
    expect(await rules('apps/worker/src/x.ts', `export const port = process.env['PORT'];\n`)).toEqual(
      expect.arrayContaining([expect.stringMatching(/process\.env is read in one place only/)]),
    );
  });

  it('rejects SQL outside libs/db, in an app and in another lib', async () => {
    const code = `interface Runner {\n  query(sql: string, params?: unknown[]): Promise<unknown[]>;\n}\nexport async function names(db: Runner): Promise<unknown[]> {\n  return db.query('SELECT name FROM sites WHERE id = $1', ['x']);\n}\n`;
    for (const file of ['apps/api/src/x.ts', 'apps/worker/src/x.ts', 'libs/jobs/src/x.ts']) {
      expect(await rules(file, code)).toEqual(
        expect.arrayContaining([expect.stringMatching(/^backplane\/sql-only-in-db: SQL outside libs\/db/)]),
      );
    }
  });

  it('accepts the same code written the allowed way', async () => {
    const ok = `import { Keyring } from '@backplane/crypto';\nasync function work(): Promise<void> {}\nexport function run(): void {\n  void work();\n}\nexport const k = Keyring;\n`;
    expect(await rules('apps/api/src/x.ts', ok)).toEqual([]);
  });
});
