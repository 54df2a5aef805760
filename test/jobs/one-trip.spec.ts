/**
 * `Database.inTenantOneTrip` (issue 19): the job runner's writes in one round trip, with the
 * values inlined as literals. What the runner writes comes back exactly (quotes, backslashes,
 * placeholders and SQL in router text), RLS still binds it to its tenant, nothing leaks to
 * the next user of the connection, and a statement that waits for another's result is refused.
 */
import { randomUUID } from 'node:crypto';
import { appLoginUrl, createDataSource, Database, openAppDataSource, TenantScope } from '@backplane/db';
import { jobsRepo } from '@backplane/jobs';
import { query } from '../../libs/db/src/sql';
import { createTestDatabase, type TestDatabase } from '@backplane/testing';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let tdb: TestDatabase;
let owner: DataSource;
let appDs: DataSource;
let db: Database;
let tenantA: string;
let tenantB: string;
let jobId: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  owner = createDataSource({ url: tdb.url, poolSize: 2 });
  await owner.initialize();
  appDs = await openAppDataSource({ url: appLoginUrl(tdb.url), poolSize: 1 });
  db = new Database(appDs);
  const [a] = await owner.query<{ id: string }[]>(`INSERT INTO tenants (slug, name) VALUES ('a', 'A') RETURNING id`);
  const [b] = await owner.query<{ id: string }[]>(`INSERT INTO tenants (slug, name) VALUES ('b', 'B') RETURNING id`);
  tenantA = a!.id;
  tenantB = b!.id;
  const [site] = await owner.query<{ id: string }[]>(
    `INSERT INTO sites (tenant_id, name, mgmt_address) VALUES ($1, 's', bp_allocate_mgmt_address()) RETURNING id`,
    [tenantA],
  );
  const { row } = await db.inTenant(TenantScope.authenticated(tenantA), (tx) =>
    jobsRepo.create(tx, {
      siteId: site!.id,
      kind: 'reboot',
      payload: {},
      requestedBy: { type: 'system', id: null, label: 'test' },
      ttlSeconds: 600,
    }),
  );
  jobId = row.id;
}, 60_000);

afterAll(async () => {
  await appDs?.destroy();
  await owner?.destroy();
  await tdb?.drop();
});

const A = () => TenantScope.authenticated(tenantA);

describe('one round trip per worker write', () => {
  it('writes router text exactly as given: quotes, backslashes, placeholders, SQL', async () => {
    const started = await db.inTenantOneTrip(A(), (tx) => jobsRepo.start(tx, jobId, "worker 'x'"));
    expect(started).toMatchObject({ state: 'running', leaseOwner: "worker 'x'", leaseEpoch: 1 });
    const nasty = `it's a \\ back'slash'' $1 $2 -- ; DROP TABLE jobs; E'\\x00' ünïcødé \n line`;
    const step = { name: `step '${nasty}`, state: 'done' as const, at: new Date().toISOString(), detail: nasty };
    expect(await db.inTenantOneTrip(A(), (tx) => jobsRepo.step(tx, jobId, step, 50, { leaseEpoch: 1 }))).toBe(
      'recorded',
    );
    const made = await db.inTenantOneTrip(A(), (tx) =>
      jobsRepo.finish(tx, jobId, 'failed', { text: nasty, n: -3 }, nasty, 1),
    );
    expect(made).toBe(true);
    const row = await db.inTenant(A(), (tx) => jobsRepo.get(tx, jobId));
    expect(row).toMatchObject({ state: 'failed', error: nasty, result: { text: nasty, n: -3 }, progress: 50 });
    expect(row!.steps).toEqual([step]);
  });

  it('is bound to its tenant by RLS, and the lease condition still holds', async () => {
    expect(await db.inTenantOneTrip(TenantScope.authenticated(tenantB), (tx) => jobsRepo.get(tx, jobId))).toBe(
      undefined,
    );
    // Ended: no run holds the lease any more, whatever its epoch.
    expect(await db.inTenantOneTrip(A(), (tx) => jobsRepo.holdsLease(tx, jobId, 1))).toBe(false);
    expect(
      await db.inTenantOneTrip(A(), (tx) =>
        jobsRepo.step(tx, jobId, { name: 'late', state: 'done', at: 'x' }, 60, { leaseEpoch: 1 }),
      ),
    ).toBe('refused');
    expect(await db.inTenant(A(), (tx) => jobsRepo.whyRefused(tx, jobId, 1))).toBe('lease_lost');
  });

  it('leaves no role or tenant on the pooled connection, and rolls back as a whole on an error', async () => {
    await db.inTenantOneTrip(A(), (tx) => jobsRepo.get(tx, jobId));
    // The pool has one connection: this is the one the trip used.
    const [s] = await appDs.query<{ u: string; r: string; t: string }[]>(
      `SELECT current_user AS u, current_setting('role') AS r, coalesce(current_setting('app.tenant_id', true), '') AS t`,
    );
    expect(s).toEqual({ u: 'backplane_app', r: 'none', t: '' });
    const before = await db.inTenant(A(), (tx) => jobsRepo.get(tx, jobId));
    await expect(
      db.inTenantOneTrip(A(), async (tx) => {
        const a = jobsRepo.setExports(tx, jobId, 'before-text', undefined);
        const b = jobsRepo.get(tx, 'not-a-uuid'); // fails: the whole trip rolls back
        return Promise.all([a, b]);
      }),
    ).rejects.toThrow(/uuid/);
    expect((await db.inTenant(A(), (tx) => jobsRepo.get(tx, jobId)))!.exportBeforeEnc).toBe(before!.exportBeforeEnc);
  });

  it('refuses a statement issued after another one was sent, and values it cannot inline', async () => {
    await expect(
      db.inTenantOneTrip(A(), async (tx) => {
        await jobsRepo.get(tx, jobId);
        return jobsRepo.get(tx, jobId);
      }),
    ).rejects.toThrow(/every statement must be issued before any result/);
    await expect(
      db.inTenantOneTrip(A(), (tx) => jobsRepo.openOfBatch(tx, randomUUID(), null, Number.NaN)),
    ).rejects.toThrow(/finite/);
  });

  it('writes several step records in order in one statement, once even when the write is repeated', async () => {
    const { row } = await db.inTenant(A(), async (tx) => {
      const [site] = await query<{ id: string }>(tx, `SELECT id FROM sites LIMIT 1`);
      return jobsRepo.create(tx, {
        siteId: site!.id,
        kind: 'reboot',
        payload: {},
        requestedBy: { type: 'system', id: null, label: 'test' },
        ttlSeconds: 600,
      });
    });
    await db.inTenantOneTrip(A(), (tx) => jobsRepo.start(tx, row.id, 'w'));
    const at = new Date().toISOString();
    const records = [
      { name: 'read', state: 'done' as const, at },
      { name: 'write', state: 'started' as const, at },
    ];
    for (let i = 0; i < 2; i++) {
      expect(await db.inTenantOneTrip(A(), (tx) => jobsRepo.step(tx, row.id, records, 10, { leaseEpoch: 1 }))).toBe(
        'recorded',
      );
    }
    expect((await db.inTenant(A(), (tx) => jobsRepo.get(tx, row.id)))!.steps).toEqual(records);
    // A cancel refuses a step that asks for it, and says so on the second trip.
    await owner.query(`UPDATE jobs SET cancel_requested = true WHERE id = $1`, [row.id]);
    const refused = await db.inTenantOneTrip(A(), (tx) =>
      jobsRepo.step(tx, row.id, { name: 'next', state: 'started', at }, undefined, {
        leaseEpoch: 1,
        unlessCancelled: true,
      }),
    );
    expect(refused).toBe('refused');
    expect(await db.inTenant(A(), (tx) => jobsRepo.whyRefused(tx, row.id, 1))).toBe('cancelled');
    expect(await db.inTenant(A(), (tx) => jobsRepo.whyRefused(tx, row.id, 2))).toBe('lease_lost');
  });

  it('updates a job row in place for a step write (HOT: no index reads steps), and still finds armed rollbacks', async () => {
    const [site] = await owner.query<{ id: string }[]>(
      `INSERT INTO sites (tenant_id, name, mgmt_address) VALUES ($1, 'hot', bp_allocate_mgmt_address()) RETURNING id`,
      [tenantA],
    );
    const create = () =>
      db.inTenant(A(), (tx) =>
        jobsRepo.create(tx, {
          siteId: site!.id,
          kind: 'apply-config',
          payload: { changes: [] },
          requestedBy: { type: 'system', id: null, label: 'test' },
          ttlSeconds: 600,
        }),
      );
    const { row } = await create();
    const at = new Date().toISOString();
    const hot = await db.inTenant(A(), async (tx) => {
      // this backend's counts not yet reported: read before and after
      const count = async () =>
        Number(
          (await query<{ n: string }>(tx, `SELECT pg_stat_get_xact_tuples_hot_updated('jobs'::regclass) AS n`))[0]!.n,
        );
      const before = await count();
      for (let i = 0; i < 10; i++) await jobsRepo.step(tx, row.id, { name: `step ${i}`, state: 'done', at }, i);
      return (await count()) - before;
    });
    expect(hot).toBe(10);
    // The armed-rollback reservation reads the generated column: armed, then disarmed.
    const armed = () =>
      owner.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM jobs WHERE site_id = $1 AND state IN ('queued', 'waiting', 'running') AND rollback_armed`,
        [site!.id],
      );
    await db.inTenant(A(), (tx) => jobsRepo.step(tx, row.id, { name: 'arm rollback', state: 'started', at }));
    expect((await armed())[0]!.n).toBe(1);
    await db.inTenant(A(), (tx) => jobsRepo.step(tx, row.id, { name: 'disarm rollback', state: 'done', at }));
    expect((await armed())[0]!.n).toBe(0);
  });
});
