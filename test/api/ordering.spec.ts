/**
 * Issue 13, defect 1: lists come newest first by a stable key and page with an opaque cursor
 * that neither skips nor repeats, even when every row has the same timestamp. Rows are
 * written directly (250 in one statement: one `now()`), then read back 7 at a time through
 * the HTTP API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorld, type World } from './fixtures';
import { startApi, type Harness } from './harness';

const N = 250;
const LIMIT = 7;

describe('list ordering and paging', () => {
  let h: Harness;
  let w: World;
  let base: string;

  beforeAll(async () => {
    h = await startApi({ API_RATE_LIMIT: '1000' });
    w = await buildWorld(h);
    base = `/api/v1/tenants/${w.a.tenantId}`;
  });
  afterAll(async () => {
    await h?.close();
  });

  /** Follows `nextCursor` from the first page to the last; the ids in the order served. */
  async function walk(path: string, query: string, key = 'id'): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 2 * (N / LIMIT) + 5; pages++) {
      const res = await h.call(
        'GET',
        `${path}?limit=${LIMIT}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        { token: w.a.platformToken },
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const items = res.body.items as Record<string, string>[];
      expect(items.length).toBeLessThanOrEqual(LIMIT);
      ids.push(...items.map((i) => i[key]!));
      cursor = res.body.nextCursor as string | null;
      if (!cursor) return ids;
    }
    throw new Error('the cursor never ended');
  }

  it('audit log: 250 entries written in the same instant come newest first, each exactly once', async () => {
    const rows: { id: string }[] = await h.ds.query(
      `INSERT INTO audit_log (tenant_id, actor_type, action, target_type, target_id)
       SELECT $1, 'system', 'test.ordering', 'site', g::text FROM generate_series(1, $2) g RETURNING id::text AS id`,
      [w.a.tenantId, N],
    );
    const newestFirst = rows.map((r) => r.id).sort((a, b) => Number(b) - Number(a));
    const served = await walk(`${base}/audit-log`, '&action=test.ordering');
    expect(served).toHaveLength(N);
    expect(served).toEqual(newestFirst);
  });

  it('tunnel events: 250 events at the same time come newest first, each exactly once', async () => {
    const rows: { id: string }[] = await h.ds.query(
      `INSERT INTO tunnel_events (tenant_id, site_id, type, accepted, at)
       SELECT $1, $2, 'auth', true, now() FROM generate_series(1, $3) RETURNING id::text AS id`,
      [w.a.tenantId, w.a.siteId, N],
    );
    const newestFirst = rows.map((r) => r.id).sort((a, b) => Number(b) - Number(a));
    const served = await walk(`${base}/sites/${w.a.siteId}/tunnel/events`, '');
    expect(served).toEqual(newestFirst);
  });

  it('jobs: 250 jobs created in the same instant page by a stable key, each exactly once', async () => {
    const rows: { id: string }[] = await h.ds.query(
      `INSERT INTO jobs (id, tenant_id, site_id, kind, payload, requested_by, expires_at)
       SELECT gen_random_uuid(), $1, $2, 'backup', '{}'::jsonb, '{"type":"system","id":null,"label":"test"}'::jsonb,
              now() + interval '1 hour'
         FROM generate_series(1, $3) RETURNING id`,
      [w.a.tenantId, w.a.siteId, N],
    );
    // Same created_at for all: the id breaks the tie, newest-first means descending.
    const expected = rows.map((r) => r.id).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const served = await walk(`${base}/jobs`, `&siteId=${w.a.siteId}`);
    expect(served).toEqual(expected);
  });

  it('sites: 250 sites created in the same instant come newest first (id breaks the tie), each exactly once', async () => {
    const rows: { id: string }[] = await h.ds.query(
      `INSERT INTO sites (tenant_id, name, tags, mgmt_address)
       SELECT $1, 'order-' || g, '{ordering}', bp_allocate_mgmt_address() FROM generate_series(1, $2) g RETURNING id`,
      [w.a.tenantId, N],
    );
    const expected = rows.map((r) => r.id).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const served = await walk(`${base}/sites`, '&tag=ordering');
    expect(served).toEqual(expected);
  });

  it('members: 250 members added in the same microsecond come newest first, each exactly once', async () => {
    // memberships.created_at keeps microseconds while cursors carry milliseconds
    const rows: { id: string }[] = await h.ds.query(
      `WITH u AS (
         INSERT INTO users (email, display_name)
         SELECT 'order-' || g || '@msp-a.test', 'Order ' || g FROM generate_series(1, $2) g RETURNING id)
       INSERT INTO memberships (tenant_id, user_id, role) SELECT $1, u.id, 'viewer' FROM u RETURNING user_id AS id`,
      [w.a.tenantId, N],
    );
    const ours = new Set(rows.map((r) => r.id));
    const expected = [...ours].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const served = await walk(`${base}/members`, '', 'userId');
    expect(new Set(served).size).toBe(served.length);
    expect(served.filter((id) => ours.has(id))).toEqual(expected);
  });

  it('a cursor that was not served by the list is a 400', async () => {
    for (const path of [
      `${base}/audit-log`,
      `${base}/sites/${w.a.siteId}/tunnel/events`,
      `${base}/jobs`,
      `${base}/sites/${w.a.siteId}/backups`,
    ]) {
      const res = await h.call('GET', `${path}?cursor=bogus`, { token: w.a.platformToken });
      expect(res.status, path).toBe(400);
    }
  });
});
