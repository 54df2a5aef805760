import { randomBytes } from 'node:crypto';
import { Keyring } from '@backplane/crypto';
import { createDataSource, KeyringMismatchError, MIGRATIONS, runMigrationsLocked, verifyKeyring } from '@backplane/db';
import { createTestDatabase, type TestDatabase } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let empty: TestDatabase;

beforeAll(async () => {
  empty = await createTestDatabase({ empty: true });
});
afterAll(async () => {
  await empty.drop();
});

async function tables(url: string): Promise<string[]> {
  const ds = createDataSource({ url, poolSize: 1 });
  await ds.initialize();
  try {
    const rows: { table_name: string }[] = await ds.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    return rows.map((r) => r.table_name);
  } finally {
    await ds.destroy();
  }
}

describe('migrations', () => {
  it('go up from empty, all the way down, and up again', async () => {
    const ds = createDataSource({ url: empty.url, poolSize: 2 });
    await ds.initialize();
    try {
      expect(await runMigrationsLocked(ds)).toHaveLength(MIGRATIONS.length);
      expect(await tables(empty.url)).toEqual(
        expect.arrayContaining(['tenants', 'users', 'memberships', 'migrations']),
      );
      for (let i = 0; i < MIGRATIONS.length; i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await tables(empty.url)).toEqual(['migrations']);
      expect(await runMigrationsLocked(ds)).toHaveLength(MIGRATIONS.length);
      expect(await runMigrationsLocked(ds)).toEqual([]);
    } finally {
      await ds.destroy();
    }
  });

  it('apply once when two replicas start together', async () => {
    const db = await createTestDatabase({ empty: true });
    const a = createDataSource({ url: db.url, poolSize: 2 });
    const b = createDataSource({ url: db.url, poolSize: 2 });
    await Promise.all([a.initialize(), b.initialize()]);
    try {
      const [ra, rb] = await Promise.all([runMigrationsLocked(a), runMigrationsLocked(b)]);
      expect(ra.length + rb.length).toBe(MIGRATIONS.length);
      const applied: unknown[] = await a.query('SELECT name FROM migrations');
      expect(applied).toHaveLength(MIGRATIONS.length);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
      await db.drop();
    }
  });
});

describe('keyring check', () => {
  it('stores a check value on first start, verifies it later, and names the missing key on a mismatch', async () => {
    const db = await createTestDatabase();
    const ds = createDataSource({ url: db.url, poolSize: 2 });
    await ds.initialize();
    try {
      const k1 = { id: 'k1', key: randomBytes(32) };
      const original = new Keyring([k1]);
      const hint = { secretsFile: '/data/secrets.json', generatedNow: false };
      expect(await verifyKeyring(ds, original, hint)).toBe('created');
      expect(await verifyKeyring(ds, original, hint)).toBe('verified');

      const replaced = new Keyring([{ id: 'k2', key: randomBytes(32) }]);
      const err = await verifyKeyring(ds, replaced, { ...hint, generatedNow: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeyringMismatchError);
      expect((err as Error).message).toMatch(
        /encrypted with key "k1".*was just created because it was missing.*Restore/s,
      );

      const sameIdWrongKey = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
      await expect(verifyKeyring(ds, sameIdWrongKey, hint)).rejects.toThrow(/does not decrypt/);

      const rotated = new Keyring([{ id: 'k3', key: randomBytes(32) }, k1]);
      expect(await verifyKeyring(ds, rotated, hint)).toBe('verified');
      const [row] = await ds.query<{ key_id: string }[]>('SELECT key_id FROM keyring_check');
      expect(row!.key_id).toBe('k3');
    } finally {
      await ds.destroy();
      await db.drop();
    }
  });
});
