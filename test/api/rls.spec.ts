import {
  appLoginUrl,
  createDataSource,
  Database,
  openAppDataSource,
  SitesRepository,
  TenantScope,
  type TenantTx,
} from '@backplane/db';
import { loadApiConfig } from '@backplane/config';
import { query } from '../../libs/db/src/sql';
import { createTestDatabase, type TestDatabase } from '@backplane/testing';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The second wall: even a query that forgets the tenant filter (written straight
 * against the transaction) sees only the scoped tenant's rows, through the pool.
 */
describe('row-level security', () => {
  let tdb: TestDatabase;
  let ds: DataSource;
  let db: Database;
  const sites = new SitesRepository();
  let a: TenantScope;
  let b: TenantScope;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    ds = createDataSource({ url: tdb.url, poolSize: 4 });
    await ds.initialize();
    db = new Database(ds);
    const [ta, tb] = await db.inPlatform(async (tx) => {
      const rows = await query<{ id: string }>(
        tx,
        `INSERT INTO tenants (slug, name) VALUES ('rls-a', 'A'), ('rls-b', 'B') RETURNING id`,
      );
      return rows.map((r) => r.id);
    });
    a = TenantScope.authenticated(ta!);
    b = TenantScope.authenticated(tb!);
    const base = { notes: '', tags: [], address: null, latitude: null, longitude: null };
    await db.inTenant(a, (tx) => sites.create(tx, { ...base, name: 'a-site' }));
    await db.inTenant(b, (tx) => sites.create(tx, { ...base, name: 'b-site' }));
  });

  afterAll(async () => {
    await ds.destroy();
    await tdb.drop();
  });

  it('an unscoped query in tenant B sees none of tenant A rows, on every pooled connection', async () => {
    const counts = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        db.inTenant(i % 2 ? a : b, async (tx: TenantTx) => {
          const rows = await query<{ name: string }>(tx, `SELECT name FROM sites`); // no tenant filter on purpose
          return { tenant: tx.tenantId, names: rows.map((r) => r.name) };
        }),
      ),
    );
    for (const c of counts) expect(c.names).toEqual([c.tenant === a.tenantId ? 'a-site' : 'b-site']);
  });

  it('runs as a role that does not own the tables, and the role does not leak to the next user', async () => {
    const who = await db.inTenant(a, (tx) => query<{ u: string }>(tx, `SELECT current_user AS u`));
    expect(who[0]!.u).toBe('backplane_app');
    const owner = await ds.query<{ o: string }[]>(`SELECT tableowner AS o FROM pg_tables WHERE tablename = 'sites'`);
    expect(owner[0]!.o).not.toBe('backplane_app');
    const after = await ds.query<{ u: string; t: string | null }[]>(
      `SELECT current_user AS u, nullif(current_setting('app.tenant_id', true), '') AS t`,
    );
    expect(after[0]!.u).not.toBe('backplane_app');
    expect(after[0]!.t).toBeNull();
  });

  it('refuses writing a row into another tenant and sees nothing without a tenant', async () => {
    await expect(
      db.inTenant(a, (tx) =>
        query(tx, `INSERT INTO sites (tenant_id, name, mgmt_address) VALUES ($1, 'x', '100.100.0.9')`, [b.tenantId]),
      ),
    ).rejects.toThrow(/row-level security/);
    const none = await db.inPlatform((tx) => query(tx, `SELECT id FROM sites`));
    expect(none).toHaveLength(0);
    const flipped = await db.inTenant(a, (tx) =>
      query(tx, `UPDATE sites SET name = 'stolen' WHERE tenant_id = $1 RETURNING id`, [b.tenantId]),
    );
    expect(flipped).toHaveLength(0);
  });

  it('keeps the audit log append-only for the app', async () => {
    await db.inTenant(a, (tx) =>
      query(tx, `INSERT INTO audit_log (tenant_id, actor_type, action, target_type) VALUES ($1, 'system', 't', 't')`, [
        a.tenantId,
      ]),
    );
    await expect(db.inTenant(a, (tx) => query(tx, `UPDATE audit_log SET action = 'x'`))).rejects.toThrow(
      /permission denied/,
    );
    await expect(db.inTenant(a, (tx) => query(tx, `DELETE FROM audit_log`))).rejects.toThrow(/permission denied/);
    await expect(ds.query(`DELETE FROM audit_log`)).rejects.toThrow(/append-only/);
  });

  it('allocates distinct management addresses under concurrent creates, never 100.64.0.1', async () => {
    const base = { notes: '', tags: [], address: null, latitude: null, longitude: null };
    const made = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        db.inTenant(i % 2 ? a : b, (tx) => sites.create(tx, { ...base, name: `c${i}` })),
      ),
    );
    const addrs = made.map((s) => s.mgmtAddress);
    expect(new Set(addrs).size).toBe(40);
    for (const ip of addrs) {
      expect(ip).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/);
      expect(ip).not.toBe('100.64.0.1');
    }
    // The unique constraint on live sites is the last line: a duplicate insert fails.
    await expect(
      db.inTenant(a, (tx) =>
        query(tx, `INSERT INTO sites (tenant_id, name, mgmt_address) VALUES ($1, 'dup', $2)`, [a.tenantId, addrs[0]]),
      ),
    ).rejects.toThrow(/sites_mgmt_address_live_key/);
  });

  describe('the app login (issue 14 finding 6)', () => {
    let appDs: DataSource;
    let app: Database;

    beforeAll(async () => {
      // Exactly what apps/api and apps/worker do with their configuration.
      const config = loadApiConfig({ DATABASE_URL: tdb.url, REDIS_URL: 'redis://127.0.0.1:6379' });
      appDs = await openAppDataSource({ url: appLoginUrl(config.DATABASE_URL, config.DATABASE_APP_URL), poolSize: 2 });
      app = new Database(appDs);
    });

    afterAll(async () => {
      await appDs.destroy();
    });

    it('RESET ROLE inside a tenant transaction has no superuser to return to: another tenant stays invisible', async () => {
      const seen = await app.inTenant(a, async (tx) => {
        await query(tx, 'RESET ROLE');
        const who = await query<{ u: string; su: string }>(
          tx,
          `SELECT current_user AS u, current_setting('is_superuser') AS su`,
        );
        const other = await query<{ name: string }>(tx, `SELECT name FROM sites WHERE tenant_id = $1`, [b.tenantId]);
        await query(tx, `SELECT set_config('app.tenant_id', '', true)`);
        const unscoped = await query<{ name: string }>(tx, `SELECT name FROM sites`);
        return { who: who[0]!, other, unscoped };
      });
      expect(seen.who.u).toBe('backplane_app');
      expect(seen.who.su).toBe('off');
      expect(seen.other).toEqual([]);
      expect(seen.unscoped).toEqual([]);
    });

    it('the login is not a superuser, cannot bypass RLS, owns nothing and cannot turn RLS off', async () => {
      const [r] = await appDs.query<{ rolsuper: boolean; rolbypassrls: boolean; owned: number }[]>(
        `SELECT rolsuper, rolbypassrls,
                (SELECT count(*)::int FROM pg_class WHERE relowner = pg_roles.oid) AS owned
           FROM pg_roles WHERE rolname = session_user`,
      );
      expect(r).toEqual({ rolsuper: false, rolbypassrls: false, owned: 0 });
      await expect(appDs.query(`SET row_security = off; SELECT name FROM sites`)).rejects.toThrow(/row-level security/);
      await expect(appDs.query(`ALTER TABLE sites DISABLE ROW LEVEL SECURITY`)).rejects.toThrow(/must be owner/);
    });

    it('the apps refuse to start on the owner login', async () => {
      await expect(openAppDataSource({ url: tdb.url, poolSize: 1 })).rejects.toThrow(
        /is a superuser.*DATABASE_APP_URL/,
      );
    });
  });
});
