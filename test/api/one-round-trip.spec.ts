import { createDataSource, Database, OneStatementError, SitesRepository, TenantScope } from '@backplane/db';
import { createTestDatabase, type TestDatabase } from '@backplane/testing';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query } from '../../libs/db/src/sql';

/**
 * `Database.readTenant` / `readPlatform` (ADR 0076): one statement, one round trip (role,
 * tenant and the statement in one simple-protocol message, the statement prepared once per
 * connection). The walls hold as in `inTenant`: RLS binds it, the role and tenant do not leak
 * to the connection's next user, and parameters arrive exactly as the extended protocol sends them.
 */
describe('one-round-trip reads', () => {
  let tdb: TestDatabase;
  let ds: DataSource;
  let db: Database;
  const sites = new SitesRepository();
  let a: TenantScope;
  let b: TenantScope;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    // One connection: every read reuses it, so leaks and prepared statements would show.
    ds = createDataSource({ url: tdb.url, poolSize: 1 });
    await ds.initialize();
    db = new Database(ds);
    const ids = await db.inPlatform((tx) =>
      query<{ id: string }>(tx, `INSERT INTO tenants (slug, name) VALUES ('ort-a', 'A'), ('ort-b', 'B') RETURNING id`),
    );
    a = TenantScope.authenticated(ids[0]!.id);
    b = TenantScope.authenticated(ids[1]!.id);
    const base = { notes: '', latitude: null, longitude: null, address: null };
    await db.inTenant(a, (tx) => sites.create(tx, { ...base, name: 'a-site', tags: ['x'] }, 60));
    await db.inTenant(b, (tx) => sites.create(tx, { ...base, name: "b-site 'quoted'", tags: ['y'] }, 60));
  });

  afterAll(async () => {
    await ds?.destroy();
    await tdb?.drop();
  });

  it('is bound by RLS to its tenant, as the app role, and leaves nothing on the connection', async () => {
    const rows = await db.readTenant(a, (tx) =>
      query<{ name: string; u: string }>(tx, `SELECT name, current_user AS u FROM sites`),
    ); // no tenant filter on purpose
    expect(rows).toEqual([{ name: 'a-site', u: 'backplane_app' }]);
    expect(await db.readTenant(b, (tx) => query<{ name: string }>(tx, `SELECT name FROM sites`))).toEqual([
      { name: "b-site 'quoted'" },
    ]);
    expect(await db.readPlatform((tx) => query(tx, `SELECT name FROM sites`))).toEqual([]);
    const after = await ds.query<{ u: string; t: string | null }[]>(
      `SELECT current_user AS u, nullif(current_setting('app.tenant_id', true), '') AS t`,
    );
    expect(after[0]!.u).not.toBe('backplane_app');
    expect(after[0]!.t).toBeNull();
  });

  it('passes parameters exactly as the extended protocol does (quotes, backslashes, arrays, bytes, JSON, NULL)', async () => {
    const sql = `SELECT $1::text AS s, $2::text[] AS arr, $3::int AS n, $4::boolean AS flag, $5::timestamptz AS at,
                        $6::bytea AS bytes, $7::jsonb AS doc, $8::text AS nothing, $9::uuid AS id`;
    const params = [
      `it's \\ "quoted" '); DROP TABLE sites; --`,
      ['a"b', 'c\\d', "e'f", '{g,h}', 'NULL'],
      -42,
      false,
      new Date('2026-12-04T10:11:12.345Z'),
      Buffer.from([0, 1, 254, 255]),
      { k: "v'\\" },
      null,
      a.tenantId,
    ];
    const viaRead = await db.readPlatform((tx) => query(tx, sql, params));
    const viaTx = await db.inPlatform((tx) => query(tx, sql, params));
    expect(viaRead).toEqual(viaTx);
    expect(viaRead[0]).toMatchObject({ s: params[0], arr: params[1], n: -42, flag: false, nothing: null });
    expect(await ds.query(`SELECT count(*)::int AS n FROM sites`)).toEqual([{ n: 2 }]);
  });

  it('prepares a statement once per connection and reuses it; the repository list reads the same as in a transaction', async () => {
    const page = { limit: 10 };
    const filter = { tag: 'x' };
    for (let i = 0; i < 3; i++) {
      const viaRead = await db.readTenant(a, (tx) => sites.list(tx, page, filter, 60));
      const viaTx = await db.inTenant(a, (tx) => sites.list(tx, page, filter, 60));
      expect(viaRead).toEqual(viaTx);
      expect(viaRead.items.map((s) => s.name)).toEqual(['a-site']);
    }
    const stats = await ds.query<{ runs: number }[]>(
      `SELECT (generic_plans + custom_plans)::int AS runs FROM pg_prepared_statements
        WHERE name LIKE 'bp\\_%' AND statement ILIKE '%FROM sites s%' AND statement ILIKE '%tags @>%'`,
    );
    expect(stats).toEqual([{ runs: 3 }]);
  });

  it('runs exactly one statement, and a failing one leaves the connection usable', async () => {
    await expect(
      db.readPlatform(async (tx) => {
        await query(tx, 'SELECT 1');
        return query(tx, 'SELECT 2');
      }),
    ).rejects.toBeInstanceOf(OneStatementError);
    await expect(db.readPlatform((tx) => query(tx, 'SELECT $1::uuid', ['not-a-uuid']))).rejects.toThrow(/uuid/);
    expect(await db.readTenant(a, (tx) => query(tx, 'SELECT count(*)::int AS n FROM sites'))).toEqual([{ n: 1 }]);
  });
});
