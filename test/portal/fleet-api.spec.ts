/**
 * What the fleet overview reads: counts by health and region in one request, tenant-scoped,
 * each site's health in the list (and a filter by it), and `site.changed` events for every site created, updated or deleted.
 */
import { realtimeKeys, replaySince } from '@backplane/realtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, createTenant, bootstrap, login, PASSWORD, startApi, type Harness } from '../api/harness';

let h: Harness;
let token: string;
let tenantId: string;

beforeAll(async () => {
  h = await startApi();
  const boot = await bootstrap(h);
  token = boot.token;
  tenantId = boot.tenantId;
});
afterAll(async () => h?.close());

const sites = (path = '', method = 'GET', body?: unknown, tok = token, tenant = tenantId) =>
  h.call(method, `/api/v1/tenants/${tenant}/sites${path}`, { token: tok, ...(body ? { body } : {}) });

describe('GET /tenants/:id/sites/summary', () => {
  it('counts online, degraded, offline and pending sites per region, and nothing of another tenant', async () => {
    const region = await h.call('POST', '/api/v1/regions', {
      token,
      body: { slug: 'eu', name: 'Europe', publicHost: 'eu.gw.test', latitude: 50, longitude: 8 },
    });
    expect(region.status).toBe(201);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await sites('', 'POST', { name: `s${i}` })).body.id as string);
    const [on1, on2, deg, off1, off2] = ids as [string, string, string, string, string];
    await h.ds.query(`UPDATE sites SET online = true, last_seen_at = now(), region_id = $2 WHERE id = ANY($1)`, [
      [on1, on2],
      region.body.id,
    ]);
    // Polls (no tunnel): degraded. Polled long ago: offline. Seen once, nothing since: offline.
    await h.ds.query(
      `INSERT INTO site_agents (site_id, tenant_id, api_user, poll_secret_hash, poll_interval_seconds, onboarded_at, last_poll_at)
       VALUES ($1, $3, 'u', 'h', 30, now(), now() - interval '20 seconds'),
              ($2, $3, 'u', 'h', 30, now() - interval '1 day', now() - interval '1 hour')`,
      [deg, off1, tenantId],
    );
    await h.ds.query(`UPDATE sites SET last_seen_at = now() - interval '2 hours', region_id = $2 WHERE id = $1`, [
      off2,
      region.body.id,
    ]);

    const res = await sites('/summary');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ total: 7, online: 2, degraded: 1, offline: 2, pending: 2 });
    expect(res.body.regions).toEqual([
      { regionId: null, regionName: null, total: 4, online: 0, degraded: 1, offline: 1, pending: 2 },
      { regionId: region.body.id, regionName: 'Europe', total: 3, online: 2, degraded: 0, offline: 1, pending: 0 },
    ]);

    // Deleted sites leave the counts.
    expect((await sites(`/${ids[6]}`, 'DELETE')).status).toBe(204);
    expect((await sites('/summary')).body.pending).toBe(1);

    // Another tenant: its own (empty) fleet; this tenant's summary is not reachable.
    const other = await createTenant(h, token, {
      slug: 'other',
      name: 'Other',
      owner: { email: 'o@other.test', password: PASSWORD },
    });
    const otherToken = await login(h, 'o@other.test');
    const own = await sites('/summary', 'GET', undefined, otherToken, other.body.id);
    expect(own.body).toMatchObject({ total: 0, online: 0, regions: [] });
    expect((await sites('/summary', 'GET', undefined, otherToken)).status).toBe(404);
  });

  it('is readable by a viewer', async () => {
    await addMember(h, token, tenantId, { email: 'v@a.test', role: 'viewer', password: PASSWORD });
    const viewer = await login(h, 'v@a.test');
    expect((await sites('/summary', 'GET', undefined, viewer)).status).toBe(200);
  });
});

describe('site health in GET /tenants/:id/sites', () => {
  type Health = 'online' | 'degraded' | 'offline' | 'pending';
  interface Row {
    id: string;
    name: string;
    health: Health;
  }
  let tok: string;
  let tid: string;
  const byName: Record<string, string> = {};
  const own = (path = '') => sites(path, 'GET', undefined, tok, tid);
  /** Every page of `query` (limit 2, so the filter has to hold across cursors). */
  async function all(query: string): Promise<Row[]> {
    const out: Row[] = [];
    let cursor: string | null = null;
    do {
      const res = await own(`?limit=2&${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      out.push(...(res.body.items as Row[]));
      cursor = res.body.nextCursor as string | null;
    } while (cursor);
    return out;
  }

  beforeAll(async () => {
    // A tenant of its own: one site of each health, two offline ones, one degraded with a tag.
    const t = await createTenant(h, token, {
      slug: 'health',
      name: 'Health',
      owner: { email: 'h@health.test', password: PASSWORD },
    });
    expect(t.status).toBe(201);
    tid = t.body.id as string;
    tok = await login(h, 'h@health.test');
    const make = [
      ['up', []],
      ['polling', ['branch']],
      ['polling-old', []],
      ['polled-long-ago', ['branch']],
      ['seen-once', ['branch']],
      ['new', ['branch']],
    ] as const;
    for (const [name, tags] of make) {
      const res = await sites('', 'POST', { name, tags: [...tags] }, tok, tid);
      expect(res.status).toBe(201);
      expect(res.body.health).toBe('pending');
      byName[name] = res.body.id as string;
    }
    await h.ds.query(`UPDATE sites SET online = true, last_seen_at = now() WHERE id = $1`, [byName.up]);
    // Polling, no tunnel: degraded (also 5 minutes after the last poll on a 60 s interval: fewer than
    // 10 missed). Polled an hour ago: offline. Seen two hours ago and nothing since: offline.
    await h.ds.query(
      `INSERT INTO site_agents (site_id, tenant_id, api_user, poll_secret_hash, poll_interval_seconds, onboarded_at, last_poll_at)
       VALUES ($1, $4, 'u', 'h', 30, now(), now() - interval '20 seconds'),
              ($2, $4, 'u', 'h', 60, now(), now() - interval '5 minutes'),
              ($3, $4, 'u', 'h', 30, now() - interval '1 day', now() - interval '1 hour')`,
      [byName.polling, byName['polling-old'], byName['polled-long-ago'], tid],
    );
    await h.ds.query(`UPDATE sites SET last_seen_at = now() - interval '2 hours' WHERE id = $1`, [byName['seen-once']]);
  });

  it('gives each site in the list and on its own page the health the summary counts', async () => {
    const rows = await all('');
    expect(Object.fromEntries(rows.map((r) => [r.name, r.health]))).toEqual({
      up: 'online',
      polling: 'degraded',
      'polling-old': 'degraded',
      'polled-long-ago': 'offline',
      'seen-once': 'offline',
      new: 'pending',
    });
    const summary = (await own('/summary')).body;
    const counts = { online: 0, degraded: 0, offline: 0, pending: 0 };
    for (const r of rows) counts[r.health]++;
    expect(summary).toMatchObject({ ...counts, total: rows.length });

    // A degraded site says so on its own page and after an edit, not only in a live event.
    expect((await own(`/${byName.polling}`)).body.health).toBe('degraded');
    const patched = await sites(`/${byName.polling}`, 'PATCH', { notes: 'x' }, tok, tid);
    expect(patched.status).toBe(200);
    expect(patched.body.health).toBe('degraded');
  });

  it('filters by health, across pages and together with the search and tag filters', async () => {
    const names = async (query: string) => (await all(query)).map((r) => r.name);
    expect(await names('health=offline')).toEqual(['seen-once', 'polled-long-ago']); // newest first
    expect(await names('health=degraded')).toEqual(['polling-old', 'polling']);
    expect(await names('health=online')).toEqual(['up']);
    expect(await names('health=pending')).toEqual(['new']);
    expect(await names('health=degraded&tag=branch')).toEqual(['polling']);
    expect(await names('health=offline&q=seen')).toEqual(['seen-once']);
    expect(await names('health=online&tag=branch')).toEqual([]);
    // limit=1: one offline site per page, the cursor leads to the other and then to none.
    const first = await own('?health=offline&limit=1');
    expect(first.body.items.map((r: Row) => r.name)).toEqual(['seen-once']);
    const second = await own(`?health=offline&limit=1&cursor=${encodeURIComponent(first.body.nextCursor as string)}`);
    expect(second.body.items.map((r: Row) => r.name)).toEqual(['polled-long-ago']);
    // Another tenant's filter sees none of these.
    expect((await sites('?health=offline')).body.items.map((r: Row) => r.name)).not.toContain('seen-once');
  });

  it('refuses an unknown health with a 400 in the api error shape', async () => {
    for (const bad of ['broken', 'Online', '']) {
      const res = await own(`?health=${bad}`);
      expect(res.status, bad).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
      expect(res.body.error.message).toContain('query.health');
      expect(typeof res.body.error.requestId).toBe('string');
      expect(res.body.error.details[0].path).toBe('query.health');
    }
  });

  it('is in the OpenAPI document: the query parameter and the field of each site', () => {
    const op = h.openapi.paths['/api/v1/tenants/{tenantId}/sites']?.get;
    const param = op?.parameters?.find((p) => 'name' in p && p.name === 'health');
    expect(param).toMatchObject({ in: 'query', schema: { enum: ['online', 'degraded', 'offline', 'pending'] } });
    expect(JSON.stringify(op?.responses)).toMatch(/"health":\{[^}]*"enum":\["online","degraded","offline","pending"\]/);
  });
});

describe('site.changed events', () => {
  it('are published in order for create, update and delete', async () => {
    const keys = realtimeKeys(h.prefix);
    const before = await replaySince(h.redis, keys, tenantId, 0);
    const start = before.kind === 'events' ? (before.events.at(-1)?.seq ?? 0) : before.seq;
    const id = (await sites('', 'POST', { name: 'evented' })).body.id as string;
    expect((await sites(`/${id}`, 'PATCH', { tags: ['x'] })).status).toBe(200);
    expect((await sites(`/${id}`, 'DELETE')).status).toBe(204);
    const replay = await replaySince(h.redis, keys, tenantId, start);
    expect(replay.kind).toBe('events');
    const mine = replay.kind === 'events' ? replay.events.filter((e) => e.type === 'site.changed') : [];
    expect(mine.map((e) => [e.data.siteId, 'change' in e.data ? e.data.change : null])).toEqual([
      [id, 'created'],
      [id, 'updated'],
      [id, 'deleted'],
    ]);
    expect(mine.every((e) => e.tenantId === tenantId)).toBe(true);
    expect(mine.map((e) => e.seq)).toEqual([...mine.map((e) => e.seq)].sort((a, b) => a - b));
  });
});
