/**
 * Fan-out to 10,000 sites (issue 19 parts 3 and 5): the batch's jobs are created by one
 * INSERT statement, all enqueued; the same request again (same Idempotency-Key) creates
 * nothing, enqueues nothing twice and reads the batch page by page — never more than 1,000
 * rows per query and never the stored exports, however large the batch.
 */
import { JOBS_QUEUE } from '@backplane/jobs';
import { testSettings } from '@backplane/testing';
import { Queue } from 'bullmq';
import type { DataSource, QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionFromUrl } from '@backplane/jobs';
import { bootstrap, startApi, type Harness } from '../api/harness';

const SITES = 10_000;

let h: Harness;
let token: string;
let tenantId: string;
let queue: Queue;

/** Every statement the api runs on `ds` while recording, with how many rows it returned. */
function recordStatements(ds: DataSource) {
  const log: { sql: string; rows: number }[] = [];
  const original = ds.createQueryRunner.bind(ds);
  ds.createQueryRunner = (...args: Parameters<DataSource['createQueryRunner']>): QueryRunner => {
    const runner = original(...args);
    const query = runner.query.bind(runner) as (
      sql: string,
      params?: unknown[],
      structured?: boolean,
    ) => Promise<unknown>;
    runner.query = (async (sql: string, params?: unknown[], structured?: boolean) => {
      const res: unknown = await query(sql, params, structured);
      const rows = structured
        ? ((res as { records?: unknown[] }).records?.length ?? 0)
        : Array.isArray(res)
          ? res.length
          : 0;
      log.push({ sql, rows });
      return res;
    }) as QueryRunner['query'];
    return runner;
  };
  return { log, stop: () => void (ds.createQueryRunner = original) };
}

beforeAll(async () => {
  h = await startApi();
  const boot = await bootstrap(h);
  token = boot.token;
  tenantId = boot.tenantId;
  await h.ds.query(
    `INSERT INTO sites (tenant_id, name, tags, mgmt_address)
     SELECT $1, 'fan-' || g, '{fan}', bp_allocate_mgmt_address() FROM generate_series(1, $2) g`,
    [tenantId, SITES],
  );
  queue = new Queue(JOBS_QUEUE, { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${h.prefix}bull` });
}, 120_000);

afterAll(async () => {
  await queue?.close();
  await h?.close();
});

const bulk = () =>
  h.call('POST', `/api/v1/tenants/${tenantId}/jobs/bulk`, {
    token,
    headers: { 'idempotency-key': 'fanout-10k' },
    body: { kind: 'apply-config', payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] }, tags: ['fan'] },
  });

const queued = async () => (await queue.getJobCounts('waiting', 'delayed', 'active')) as Record<string, number>;

describe('fan-out to 10,000 sites', () => {
  let batchId: string;

  it('creates the 10,000 jobs with one INSERT statement and enqueues each once', async () => {
    const rec = recordStatements(h.db.dataSource);
    let res: Awaited<ReturnType<typeof bulk>>;
    try {
      res = await bulk();
    } finally {
      rec.stop();
    }
    expect(res.status).toBe(201);
    const batch = (res.body as { batch: { id: string; total: number; states: Record<string, number> } }).batch;
    batchId = batch.id;
    expect(batch.total).toBe(SITES);
    expect(batch.states).toEqual({ queued: SITES });
    expect(rec.log.filter((s) => /INSERT INTO jobs\b/.test(s.sql))).toHaveLength(1);
    const [n] = await h.ds.query(`SELECT count(*)::int AS n FROM jobs WHERE batch_id = $1`, [batchId]);
    expect(n.n).toBe(SITES);
    expect((await queued())['waiting']).toBe(SITES);
  }, 120_000);

  it('a replay creates nothing, enqueues nothing twice and reads at most 1,000 rows per query, never the exports', async () => {
    // Stored exports make every job row heavy: a replay must not read them.
    await h.ds.query(`UPDATE jobs SET export_before_enc = repeat('x', 4000) WHERE batch_id = $1`, [batchId]);
    const rec = recordStatements(h.db.dataSource);
    let res: Awaited<ReturnType<typeof bulk>>;
    try {
      res = await bulk();
    } finally {
      rec.stop();
    }
    expect(res.status).toBe(200);
    expect((res.body as { batch: { id: string } }).batch.id).toBe(batchId);
    const [n] = await h.ds.query(`SELECT count(*)::int AS n FROM jobs`);
    expect(n.n).toBe(SITES);
    expect((await queued())['waiting']).toBe(SITES);
    // The replay read the batch's open jobs: 10 pages of 1,000, each with a LIMIT.
    const reads = rec.log.filter((s) => /\bFROM jobs\b/.test(s.sql) && !/count\(\*\)/.test(s.sql));
    expect(reads.length).toBeGreaterThanOrEqual(SITES / 1000);
    for (const r of reads) expect(r.sql).toMatch(/\bLIMIT\b/);
    expect(Math.max(...rec.log.map((s) => s.rows))).toBeLessThanOrEqual(1000);
    expect(rec.log.filter((s) => /export_(before|after)_enc/.test(s.sql))).toEqual([]);
  }, 120_000);

  it('a bulk to sites outside their maintenance window holds exactly those, in a handful of statements', async () => {
    // Half the sites get a tag whose window is closed now: every day, opening in about 6 h (UTC).
    await h.ds.query(
      `UPDATE sites SET tags = '{fan,fan-night}' WHERE tenant_id = $1 AND right(name, 1) IN ('1', '3', '5', '7', '9')`,
      [tenantId],
    );
    const opens = new Date(Math.ceil((Date.now() + 6 * 3600_000) / 60_000) * 60_000);
    const win = await h.call('POST', `/api/v1/tenants/${tenantId}/maintenance-windows`, {
      token,
      body: {
        name: 'night',
        tag: 'fan-night',
        days: [1, 2, 3, 4, 5, 6, 7],
        start: opens.toISOString().slice(11, 16),
        durationMinutes: 60,
      },
    });
    expect(win.status, JSON.stringify(win.body)).toBe(201);
    const before = (await queued())['waiting']!;
    const rec = recordStatements(h.db.dataSource);
    let res: Awaited<ReturnType<typeof bulk>>;
    try {
      res = await h.call('POST', `/api/v1/tenants/${tenantId}/jobs/bulk`, {
        token,
        headers: { 'idempotency-key': 'fanout-windows' },
        body: { kind: 'apply-config', payload: { changes: [{ menu: 'dns', servers: ['1.1.1.1'] }] }, tags: ['fan'] },
      });
    } finally {
      rec.stop();
    }
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const batch = (res.body as { batch: { id: string; states: Record<string, number> } }).batch;
    expect(batch.states).toEqual({ queued: SITES / 2, waiting: SITES / 2 });
    // The held jobs are exactly those of the tagged sites, each with the window's reason.
    const [held] = await h.ds.query(
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE 'fan-night' = ANY(s.tags) AND j.not_before = $2
                                 AND j.error = $3)::int AS right
         FROM jobs j JOIN sites s ON s.id = j.site_id WHERE j.batch_id = $1 AND j.state = 'waiting'`,
      [batch.id, opens.toISOString(), `waiting for maintenance window "night" (opens ${opens.toISOString()}, UTC)`],
    );
    expect(held).toEqual({ n: SITES / 2, right: SITES / 2 });
    // Only the others were queued.
    expect((await queued())['waiting']).toBe(before + SITES / 2);
    // Set-based: no statement per site (it used to be four per held site).
    expect(rec.log.length).toBeLessThan(40);
    expect(rec.log.filter((s) => /UPDATE jobs\b/.test(s.sql))).toHaveLength(1);
  }, 120_000);

  it('a job list never reads more than 1,000 rows, whatever limit it is asked for', async () => {
    const { jobsRepo } = await import('@backplane/jobs');
    const { TenantScope } = await import('@backplane/db');
    const page = await h.db.inTenant(TenantScope.authenticated(tenantId), (tx) =>
      jobsRepo.page(tx, { batchId }, { limit: 1_000_000 }),
    );
    expect(page.items).toHaveLength(1000);
    expect(page.nextCursor).not.toBeNull();
  });

  it('a page of the job list says which jobs have exports without reading them', async () => {
    const rec = recordStatements(h.db.dataSource);
    let res: Awaited<ReturnType<Harness['call']>>;
    try {
      res = await h.call('GET', `/api/v1/tenants/${tenantId}/jobs?batchId=${batchId}&limit=50`, { token });
    } finally {
      rec.stop();
    }
    expect(res.status).toBe(200);
    const items = (res.body as { items: { hasExports: boolean }[] }).items;
    expect(items).toHaveLength(50);
    expect(items.every((j) => j.hasExports)).toBe(true);
    const reads = rec.log.filter((s) => /\bFROM jobs\b/.test(s.sql));
    expect(reads.length).toBeGreaterThan(0);
    for (const r of reads) expect(r.sql).not.toMatch(/export_before_enc AS/);
  });
});
