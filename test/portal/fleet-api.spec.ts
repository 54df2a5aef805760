/**
 * What the fleet overview reads: counts by health and region in one request, tenant-scoped,
 * and `site.changed` events for every site created, updated or deleted.
 */
import { realtimeKeys, replaySince } from '@backplane/realtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap, login, PASSWORD, startApi, type Harness } from '../api/harness';

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
    const other = await h.call('POST', '/api/v1/tenants', {
      token,
      body: { slug: 'other', name: 'Other', owner: { email: 'o@other.test', password: PASSWORD } },
    });
    const otherToken = await login(h, 'o@other.test');
    const own = await sites('/summary', 'GET', undefined, otherToken, other.body.id);
    expect(own.body).toMatchObject({ total: 0, online: 0, regions: [] });
    expect((await sites('/summary', 'GET', undefined, otherToken)).status).toBe(404);
  });

  it('is readable by a viewer', async () => {
    await h.call('POST', `/api/v1/tenants/${tenantId}/members`, {
      token,
      body: { email: 'v@a.test', role: 'viewer', password: PASSWORD },
    });
    const viewer = await login(h, 'v@a.test');
    expect((await sites('/summary', 'GET', undefined, viewer)).status).toBe(200);
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
