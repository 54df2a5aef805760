import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthCache } from '../../apps/api/src/auth/auth-cache';
import { buildWorld, type World } from './fixtures';
import { startApi, type Harness } from './harness';

describe('control plane features', () => {
  let h: Harness;
  let w: World;
  let sites: string;
  let owner: string;

  beforeAll(async () => {
    h = await startApi({ API_RATE_LIMIT: '250', GATEWAY_DOWN_AFTER: '10' });
    w = await buildWorld(h);
    sites = `/api/v1/tenants/${w.a.tenantId}/sites`;
    owner = w.a.platformToken;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('sites: create, get, update, delete with a fixed management address', async () => {
    const c = await h.call('POST', sites, {
      token: owner,
      body: { name: 'Branch 7', notes: 'rack 2', tags: ['branch', 'eu'], address: 'Main St 1, Berlin' },
    });
    expect(c.status).toBe(201);
    expect(c.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(c.body.mgmtAddress).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
    expect(c.body.status).toEqual({
      online: false,
      lastSeenAt: null,
      routerosVersion: null,
      board: null,
      regionId: null,
      gatewayId: null,
    });
    const u = await h.call('PATCH', `${sites}/${c.body.id}`, {
      token: w.a.users.operator.token,
      body: { name: 'Branch 7b', latitude: 52.52, longitude: 13.4 },
    });
    expect(u.status).toBe(200);
    expect(u.body.location).toEqual({ address: 'Main St 1, Berlin', latitude: 52.52, longitude: 13.4 });
    expect(u.body.mgmtAddress).toBe(c.body.mgmtAddress);
    expect((await h.call('GET', `${sites}/${c.body.id}`, { token: w.a.users.viewer.token })).body.name).toBe(
      'Branch 7b',
    );
    expect((await h.call('DELETE', `${sites}/${c.body.id}`, { token: w.a.users.operator.token })).status).toBe(403);
    expect((await h.call('DELETE', `${sites}/${c.body.id}`, { token: w.a.users.admin.token })).status).toBe(204);
    expect((await h.call('GET', `${sites}/${c.body.id}`, { token: owner })).status).toBe(404);
    // A deleted site's address is not handed out again (its router may still use it).
    const next = await h.call('POST', sites, { token: owner, body: { name: 'after' } });
    expect(next.body.mgmtAddress).not.toBe(c.body.mgmtAddress);
  });

  it('sites: 30 concurrent creates through the API get 30 distinct addresses', async () => {
    const made = await Promise.all(
      Array.from({ length: 30 }, (_, i) => h.call('POST', sites, { token: owner, body: { name: `conc-${i}` } })),
    );
    expect(made.map((m) => m.status)).toEqual(Array<number>(30).fill(201));
    const addrs = new Set(made.map((m) => m.body.mgmtAddress as string));
    expect(addrs.size).toBe(30);
    expect(addrs.has('100.64.0.1')).toBe(false);
  });

  it('sites: cursor pagination walks every site once; filters by name, tag, online', async () => {
    await h.call('POST', sites, { token: owner, body: { name: 'Tagged Alpha', tags: ['vip'] } });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { body: { items: { id: string }[]; nextCursor: string | null } } = await h.call(
        'GET',
        `${sites}?limit=7${cursor ? `&cursor=${cursor}` : ''}`,
        { token: owner },
      );
      seen.push(...res.body.items.map((s) => s.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    const all = await h.call('GET', `${sites}?limit=200`, { token: owner });
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(all.body.items.map((s: { id: string }) => s.id));
    expect(pages).toBeGreaterThan(3);
    const byTag = await h.call('GET', `${sites}?tag=vip`, { token: owner });
    expect(byTag.body.items.map((s: { name: string }) => s.name)).toEqual(['Tagged Alpha']);
    const byName = await h.call('GET', `${sites}?q=alpha`, { token: owner });
    expect(byName.body.items.map((s: { name: string }) => s.name)).toEqual(['Tagged Alpha']);
    const online = await h.call('GET', `${sites}?online=true`, { token: owner });
    expect(online.body.items).toEqual([]);
    const pct = await h.call('GET', `${sites}?q=%25`, { token: owner });
    expect(pct.body.items).toEqual([]);
  });

  it('Idempotency-Key: same key and body -> same answer; different body -> 422', async () => {
    const headers = { 'idempotency-key': 'create-site-42' };
    const first = await h.call('POST', sites, { token: owner, headers, body: { name: 'Once' } });
    const again = await h.call('POST', sites, { token: owner, headers, body: { name: 'Once' } });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const list = await h.call('GET', `${sites}?q=Once`, { token: owner });
    expect(list.body.items).toHaveLength(1);
    const other = await h.call('POST', sites, { token: owner, headers, body: { name: 'Twice' } });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    // Keys are per caller: another caller's same key is independent.
    const op = await h.call('POST', sites, { token: w.a.users.operator.token, headers, body: { name: 'Once' } });
    expect(op.status).toBe(201);
    expect(op.body.id).not.toBe(first.body.id);
    // A failed first attempt is not remembered.
    const bad = { 'idempotency-key': 'bad-then-good' };
    expect((await h.call('POST', sites, { token: owner, headers: bad, body: { name: '' } })).status).toBe(400);
  });

  it('audit log: every mutation with actor, source IP, target and before/after; filterable; no secrets', async () => {
    const c = await h.call('POST', sites, { token: w.a.keys.operator, body: { name: 'audited' } });
    await h.call('PATCH', `${sites}/${c.body.id}`, { token: owner, body: { notes: 'changed' } });
    const log = await h.call('GET', `/api/v1/tenants/${w.a.tenantId}/audit-log?targetId=${c.body.id}`, {
      token: w.a.users.admin.token,
    });
    expect(log.status).toBe(200);
    expect(log.body.items.map((e: { action: string }) => e.action)).toEqual(['site.updated', 'site.created']);
    const [upd, crt] = log.body.items;
    expect(crt.actor.type).toBe('api_key');
    expect(crt.actor.label).toBe('a-operator');
    expect(crt.actor.sourceIp).toBe('127.0.0.1');
    expect(upd.actor).toMatchObject({ type: 'user', id: w.a.ownerUserId });
    expect(upd.before.notes).toBe('');
    expect(upd.after.notes).toBe('changed');
    const keys = await h.call('GET', `/api/v1/tenants/${w.a.tenantId}/audit-log?action=api_key.created`, {
      token: owner,
    });
    expect(keys.body.items.length).toBeGreaterThanOrEqual(4);
    const everything = JSON.stringify(
      (await h.call('GET', `/api/v1/tenants/${w.a.tenantId}/audit-log?limit=200`, { token: owner })).body,
    );
    for (const secret of Object.values(w.a.keys)) expect(everything).not.toContain(secret.slice(12));
    expect(everything).not.toContain('argon2id');
    // Tenant B's audit entries are not in A's log.
    expect(everything).not.toContain(w.b.siteId);
    // Viewers and operators do not read the audit log.
    expect(
      (await h.call('GET', `/api/v1/tenants/${w.a.tenantId}/audit-log`, { token: w.a.users.operator.token })).status,
    ).toBe(403);
  });

  it('members: owners are protected; admins cannot grant owner; a tenant keeps one owner', async () => {
    const members = `/api/v1/tenants/${w.a.tenantId}/members`;
    const admin = w.a.users.admin.token;
    expect(
      (await h.call('PATCH', `${members}/${w.a.users.viewer.userId}`, { token: admin, body: { role: 'owner' } }))
        .status,
    ).toBe(403);
    expect((await h.call('DELETE', `${members}/${w.a.ownerUserId}`, { token: admin })).status).toBe(403);
    expect(
      (await h.call('PATCH', `${members}/${w.a.users.viewer.userId}`, { token: admin, body: { role: 'operator' } }))
        .status,
    ).toBe(200);
    // Demoting owners until one is left.
    await h.call('PATCH', `${members}/${w.a.users.owner.userId}`, { token: owner, body: { role: 'admin' } });
    const last = await h.call('PATCH', `${members}/${w.a.ownerUserId}`, { token: owner, body: { role: 'admin' } });
    expect(last.status).toBe(409);
    await h.call('PATCH', `${members}/${w.a.users.owner.userId}`, { token: owner, body: { role: 'owner' } });
    await h.call('PATCH', `${members}/${w.a.users.viewer.userId}`, { token: owner, body: { role: 'viewer' } });
  });

  it('regions and gateways: enroll once, heartbeat, marked down when heartbeats stop', async () => {
    const gws = await h.call('GET', `/api/v1/gateways?regionId=${w.regionId}`, { token: owner });
    expect(gws.body.items.map((g: { status: string }) => g.status)).toEqual(['down']);
    const hb = await h.call('POST', '/api/v1/gateway/heartbeat', {
      token: w.gatewayCredential,
      body: { version: '0.1.0' },
    });
    expect(hb.status).toBe(200);
    expect(hb.body.status).toBe('up');
    await h.ds.query(`UPDATE gateways SET last_heartbeat_at = now() - interval '11 seconds'`);
    const later = await h.call('GET', '/api/v1/gateways', { token: owner });
    expect(later.body.items[0]).toMatchObject({ status: 'down', version: '0.1.0' });
    // Enrollment tokens are one-time.
    const et = await h.call('POST', `/api/v1/regions/${w.regionId}/enrollment-tokens`, {
      token: owner,
      body: { ttlMinutes: 5 },
    });
    expect(
      (await h.call('POST', '/api/v1/gateway/enroll', { body: { token: et.body.token, name: 'gw-2' } })).status,
    ).toBe(201);
    expect(
      (await h.call('POST', '/api/v1/gateway/enroll', { body: { token: et.body.token, name: 'gw-3' } })).status,
    ).toBe(401);
    // A region with live gateways cannot be deleted; tenant owners are not platform operators.
    expect((await h.call('DELETE', `/api/v1/regions/${w.regionId}`, { token: owner })).status).toBe(409);
    expect((await h.call('GET', '/api/v1/regions', { token: w.a.users.owner.token })).status).toBe(403);
    const platformLog = await h.call('GET', '/api/v1/platform/audit-log?action=gateway.enrolled', { token: owner });
    expect(platformLog.body.items.length).toBe(2);
  });

  it('serves OpenAPI (UI and JSON), health, readiness and metrics; CORS is off by default', async () => {
    const json = await h.call('GET', '/api/docs/openapi.json');
    expect(json.status).toBe(200);
    expect(json.body.openapi).toMatch(/^3\./);
    expect(Object.keys(json.body.paths)).toContain('/api/v1/tenants/{tenantId}/sites');
    const listSites = json.body.paths['/api/v1/tenants/{tenantId}/sites'].get;
    expect(listSites.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['tenantId', 'limit', 'cursor', 'q', 'tag', 'online']),
    );
    expect(listSites.responses.default.content['application/json'].schema.properties.error).toBeDefined();
    const ui = await h.call('GET', '/api/docs');
    expect(ui.status).toBe(200);
    expect(String(ui.body)).toContain('swagger');
    expect((await h.call('GET', '/healthz')).status).toBe(200);
    expect((await h.call('GET', '/readyz')).status).toBe(200);
    const metrics = String((await h.call('GET', '/metrics')).body);
    expect(metrics).toContain('backplane_api_request_duration_seconds_bucket');
    expect(metrics).toContain('route="/api/v1/tenants/:tenantId/sites"');
    expect(metrics).not.toContain(w.a.tenantId);
    const pre = await h.call('OPTIONS', sites, {
      headers: { origin: 'https://evil.test', 'access-control-request-method': 'GET' },
    });
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('rate limits per client in Redis with 429 and Retry-After', async () => {
    const token = w.a.users.viewer.token;
    let limited: Awaited<ReturnType<Harness['call']>> | undefined;
    for (let i = 0; i < 270 && !limited; i++) {
      const res = await h.call('GET', '/api/v1/me', { token });
      if (res.status === 429) limited = res;
    }
    expect(limited?.body.error.code).toBe('rate_limited');
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0);
    // Other clients are unaffected.
    expect((await h.call('GET', '/api/v1/me', { token: owner })).status).toBe(200);
  }, 60_000);

  it('a disabled tenant answers 404 to its people and its API keys', async () => {
    const url = `/api/v1/tenants/${w.b.tenantId}/sites`;
    expect((await h.call('GET', url, { token: w.b.key })).status).toBe(200);
    await h.ds.query(`UPDATE tenants SET disabled = true WHERE id = $1`, [w.b.tenantId]);
    // Whoever disables a tenant announces it (cached authentication ends at once; ADR 0076).
    await h.app.get(AuthCache).revoke({ tenant: w.b.tenantId });
    expect((await h.call('GET', url, { token: w.b.token })).status).toBe(404);
    expect((await h.call('GET', url, { token: w.b.key })).status).toBe(404);
    await h.ds.query(`UPDATE tenants SET disabled = false WHERE id = $1`, [w.b.tenantId]);
    await h.app.get(AuthCache).revoke({ tenant: w.b.tenantId });
    expect((await h.call('GET', url, { token: w.b.key })).status).toBe(200);
  });
});
