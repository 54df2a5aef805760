import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { loadApiConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { appLoginUrl, Database, openAppDataSource, TenantScope } from '@backplane/db';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { RealtimePublisher } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp, type ApiApp } from '../../apps/api/src/app';
import { AUTH_CACHE_TTL_MS, AuthCache } from '../../apps/api/src/auth/auth-cache';
import type { TenantContext } from '../../apps/api/src/common/request';
import { SITE_LIST_CACHE_TTL_MS, SiteListCache } from '../../apps/api/src/sites/site-list-cache';
import { buildWorld, type World } from './fixtures';
import { addMember, login, PASSWORD, startApi, type Harness } from './harness';

/**
 * Issue 19 (ADR 0076): the hot paths cache authentication results and site list pages, and
 * the caches never show what a user must not see: a change in the list within 1 s, a revoked
 * session, key or membership refused on the next request on every api process with caches
 * warm, and no cached page crossing tenants or roles.
 */
describe('hot-path caches', () => {
  let h: Harness;
  let w: World;
  /** A second api process on the same database and Redis prefix. */
  let b: ApiApp & { close(): Promise<void> };

  const callB = async (method: string, url: string, token: string, body?: unknown) => {
    const res = await b.app.inject({
      method: method as 'GET',
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    return { status: res.statusCode, body: JSON.parse(res.body || 'null') as Record<string, never> };
  };
  const list = (tenantId: string) => `/api/v1/tenants/${tenantId}/sites?limit=50`;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** Warms both processes' caches for a token and url (first call fills, second is served from it). */
  const warm = async (url: string, token: string) => {
    for (let i = 0; i < 2; i++) {
      expect((await h.call('GET', url, { token })).status).toBe(200);
      expect((await callB('GET', url, token)).status).toBe(200);
    }
  };

  beforeAll(async () => {
    h = await startApi();
    w = await buildWorld(h);
    const { redisUrl } = testSettings();
    const config = loadApiConfig({
      DATABASE_URL: h.tdb.url,
      REDIS_URL: redisUrl,
      JWT_SIGNING_KEY: h.signingKey,
      ENCRYPTION_KEYS: `test:${randomBytes(32).toString('base64')}`,
      API_RATE_LIMIT: '100000',
    });
    const appDs: DataSource = await openAppDataSource({ url: appLoginUrl(h.tdb.url), poolSize: 3 });
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
    const api = await createApiApp({
      config,
      secrets: { jwtSigningKey: h.signingKey },
      keyring: new Keyring([{ id: 'test', key: Buffer.from(config.ENCRYPTION_KEYS!.split(':')[1]!, 'base64') }]),
      db: new Database(appDs),
      redis,
      logger: createLogger({ app: 'api-b', level: 'warn', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
      registry: createMetricsRegistry('api'),
      checks: [],
      redisPrefix: h.prefix,
    });
    await api.app.getHttpAdapter().getInstance().ready();
    b = {
      ...api,
      async close() {
        await api.app.close();
        redis.disconnect();
        await appDs.destroy();
      },
    };
  });

  afterAll(async () => {
    await b?.close();
    await h?.close();
  });

  it('serves warm requests from the auth cache (a change behind its back shows only after the TTL)', async () => {
    const viewer = w.a.users.viewer;
    await warm(list(w.a.tenantId), viewer.token);
    expect(b.app.get(AuthCache).size).toBeGreaterThan(0);
    // Revoked in the database without the revocation event: the cache does not know yet.
    const sessionId = (JSON.parse(Buffer.from(viewer.token.split('.')[1]!, 'base64url').toString()) as { sid: string })
      .sid;
    await h.ds.query(`UPDATE sessions SET revoked_at = now() WHERE id = $1`, [sessionId]);
    expect((await callB('GET', list(w.a.tenantId), viewer.token)).status).toBe(200);
    await sleep(AUTH_CACHE_TTL_MS + 100);
    expect((await callB('GET', list(w.a.tenantId), viewer.token)).status).toBe(401);
    w.a.users.viewer = { ...viewer, token: await login(h, 'viewer@msp-a.test') };
  });

  it('does not depend on the pub/sub message: a process behind the Redis epoch asks PostgreSQL', async () => {
    const email = 'lost-message@msp-a.test';
    expect((await addMember(h, w.a.platformToken, w.a.tenantId, { email, role: 'viewer' })).status).toBe(201);
    const token = await login(h, email);
    await warm(list(w.a.tenantId), token);
    const sessionId = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid;
    // A revocation whose message never arrives: the row changes and the epoch moves, nothing is published.
    await h.ds.query(`UPDATE sessions SET revoked_at = now() WHERE id = $1`, [sessionId]);
    await h.redis.incr(`${h.prefix}auth:epoch`);
    expect((await callB('GET', list(w.a.tenantId), token)).status).toBe(401);
    expect((await h.call('GET', list(w.a.tenantId), { token })).status).toBe(401);
    // Caching resumes after the lag limit (the process drops everything and catches up): a
    // session ended behind the cache's back is served from it again.
    await sleep(1_100);
    const email2 = 'lost-message-2@msp-a.test';
    expect((await addMember(h, w.a.platformToken, w.a.tenantId, { email: email2, role: 'viewer' })).status).toBe(201);
    const token2 = await login(h, email2);
    await warm(list(w.a.tenantId), token2);
    const session2 = (JSON.parse(Buffer.from(token2.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid;
    await h.ds.query(`UPDATE sessions SET revoked_at = now() WHERE id = $1`, [session2]);
    expect((await callB('GET', list(w.a.tenantId), token2)).status).toBe(200);
  });

  it('a signed-out session is refused on the next request, on both processes, with caches warm', async () => {
    const email = 'signout@msp-a.test';
    expect((await addMember(h, w.a.platformToken, w.a.tenantId, { email, role: 'operator' })).status).toBe(201);
    const token = await login(h, email, PASSWORD);
    await warm(list(w.a.tenantId), token);
    await warm('/api/v1/me', token);
    // Sign out on process A; the very next request on B is refused.
    expect((await h.call('POST', '/api/v1/auth/logout', { token })).status).toBe(204);
    const onB = await callB('GET', list(w.a.tenantId), token);
    expect(onB.status).toBe(401);
    expect((await callB('GET', '/api/v1/me', token)).status).toBe(401);
    expect((await h.call('GET', list(w.a.tenantId), { token })).status).toBe(401);
  });

  it("the revocation message reaches the other process: its cache keeps serving everyone else's entries", async () => {
    const mk = async (email: string) => {
      expect((await addMember(h, w.a.platformToken, w.a.tenantId, { email, role: 'viewer' })).status).toBe(201);
      return login(h, email);
    };
    const stays = await mk('stays@msp-a.test');
    const leaves = await mk('leaves@msp-a.test');
    await warm(list(w.a.tenantId), stays);
    await warm(list(w.a.tenantId), leaves);
    expect((await h.call('POST', '/api/v1/auth/logout', { token: leaves })).status).toBe(204);
    await sleep(200); // the message travels (well under the 1 s after which a lagging process would catch up anyway)
    // Ended behind the cache's back: B still answers from its cache, so it applied the message
    // (a process that missed it would be behind the epoch and ask PostgreSQL: 401).
    const sessionId = (JSON.parse(Buffer.from(stays.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid;
    await h.ds.query(`UPDATE sessions SET revoked_at = now() WHERE id = $1`, [sessionId]);
    expect((await callB('GET', list(w.a.tenantId), stays)).status).toBe(200);
    expect((await callB('GET', list(w.a.tenantId), leaves)).status).toBe(401);
  });

  it('a revoked API key is refused on the next request, on both processes, with caches warm', async () => {
    const created = await h.call('POST', `/api/v1/tenants/${w.a.tenantId}/api-keys`, {
      token: w.a.platformToken,
      body: { name: 'cached', role: 'viewer' },
    });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    await warm(list(w.a.tenantId), key);
    const revoked = await h.call('DELETE', `/api/v1/tenants/${w.a.tenantId}/api-keys/${created.body.id}`, {
      token: w.a.platformToken,
    });
    expect(revoked.status).toBe(204);
    const onB = await callB('GET', list(w.a.tenantId), key);
    expect(onB.status).toBe(401);
    expect(onB.body).toMatchObject({ error: { message: 'API key was revoked' } });
    expect((await h.call('GET', list(w.a.tenantId), { token: key })).status).toBe(401);
  });

  it('a demoted member acts with the new role on the next request, and a removed one is refused', async () => {
    const email = 'demote@msp-a.test';
    const m = await addMember(h, w.a.platformToken, w.a.tenantId, { email, role: 'operator' });
    expect(m.status).toBe(201);
    const token = await login(h, email);
    const create = (name: string) => callB('POST', `/api/v1/tenants/${w.a.tenantId}/sites`, token, { name });
    expect((await create('by-operator')).status).toBe(201);
    await warm(list(w.a.tenantId), token);
    const demoted = await h.call('PATCH', `/api/v1/tenants/${w.a.tenantId}/members/${m.body.userId}`, {
      token: w.a.platformToken,
      body: { role: 'viewer' },
    });
    expect(demoted.status).toBe(200);
    expect((await create('by-viewer')).status).toBe(403);
    expect((await callB('GET', list(w.a.tenantId), token)).status).toBe(200);
    const removed = await h.call('DELETE', `/api/v1/tenants/${w.a.tenantId}/members/${m.body.userId}`, {
      token: w.a.platformToken,
    });
    expect(removed.status).toBe(204);
    expect((await callB('GET', list(w.a.tenantId), token)).status).toBe(404);
  });

  it("/me is cached per person and shows a membership, a removal and a tenant's new name on the next request", async () => {
    const email = 'me-cache@msp-a.test';
    const m = await addMember(h, w.a.platformToken, w.a.tenantId, { email, role: 'viewer' });
    expect(m.status).toBe(201);
    const token = await login(h, email);
    const tenantsOnB = async () =>
      ((await callB('GET', '/api/v1/me', token)).body as unknown as { tenants: { id: string; name: string }[] })
        .tenants;
    await warm('/api/v1/me', token);
    expect((await tenantsOnB()).map((t) => t.id)).toEqual([w.a.tenantId]);
    const renamed = await h.call('PATCH', `/api/v1/tenants/${w.a.tenantId}`, {
      token: w.a.platformToken,
      body: { name: 'MSP A renamed' },
    });
    expect(renamed.status).toBe(200);
    expect((await tenantsOnB())[0]?.name).toBe('MSP A renamed');
    // Invited to B and accepted while signed in: B is on /me at once.
    const inv = await h.call('POST', `/api/v1/tenants/${w.b.tenantId}/invitations`, {
      token: w.b.token,
      body: { email, role: 'viewer' },
    });
    expect(inv.status).toBe(201);
    await warm('/api/v1/me', token);
    const acc = await h.call('POST', '/api/v1/invitations/accept-signed-in', {
      token,
      body: { token: inv.body.token },
    });
    expect(acc.status).toBe(201);
    expect((await tenantsOnB()).map((t) => t.id).sort()).toEqual([w.a.tenantId, w.b.tenantId].sort());
    await warm('/api/v1/me', token);
    const removed = await h.call('DELETE', `/api/v1/tenants/${w.b.tenantId}/members/${m.body.userId}`, {
      token: w.b.token,
    });
    expect(removed.status).toBe(204);
    expect((await tenantsOnB()).map((t) => t.id)).toEqual([w.a.tenantId]);
  });

  it('a site change is in the list on the next request after its event, and within 1 s without one', async () => {
    const owner = w.a.platformToken;
    await warm(list(w.a.tenantId), owner);
    // Through the api (site.changed), on process A; read on B.
    const renamed = await h.call('PATCH', `/api/v1/tenants/${w.a.tenantId}/sites/${w.a.siteId}`, {
      token: owner,
      body: { name: 'a-site-renamed' },
    });
    expect(renamed.status).toBe(200);
    const names = async () =>
      ((await callB('GET', list(w.a.tenantId), owner)).body as unknown as { items: { id: string; name: string }[] })
        .items;
    expect((await names()).find((s) => s.id === w.a.siteId)?.name).toBe('a-site-renamed');

    // A status change as the gateway link and the worker report it (row, then site.status).
    await warm(list(w.a.tenantId), owner);
    const online = async () =>
      (
        (await callB('GET', list(w.a.tenantId), owner)).body as unknown as {
          items: { id: string; status: { online: boolean } }[];
        }
      ).items.find((s) => s.id === w.a.siteId)?.status.online;
    expect(await online()).toBe(false);
    await h.ds.query(`UPDATE sites SET online = true, last_seen_at = now() WHERE id = $1`, [w.a.siteId]);
    await new RealtimePublisher({ redis: h.redis, prefix: h.prefix }).publish(w.a.tenantId, {
      type: 'site.status',
      data: { siteId: w.a.siteId, online: true },
    });
    expect(await online()).toBe(true);

    // A change nobody announced: at most SITE_LIST_CACHE_TTL_MS (1 s) late.
    await warm(list(w.a.tenantId), owner);
    const warmedAt = Date.now(); // every cached page was stored before this
    await h.ds.query(`UPDATE sites SET name = 'changed-quietly' WHERE id = $1`, [w.a.siteId]);
    for (;;) {
      const askedAt = Date.now();
      if ((await names()).find((s) => s.id === w.a.siteId)?.name === 'changed-quietly') break;
      // a stale page only for a request made while the page could still be valid (however slow the
      // machine makes each request): one made SITE_LIST_CACHE_TTL_MS after it was stored reads PostgreSQL
      expect(askedAt - warmedAt).toBeLessThan(SITE_LIST_CACHE_TTL_MS);
      await sleep(20);
    }
  });

  it('two tenants never share a cached page, and a cached page is never served to another role', async () => {
    const ids = async (tenantId: string, token: string) =>
      (
        (await callB('GET', list(tenantId), token)).body as unknown as { items: { id: string }[] } | undefined
      )?.items?.map((s) => s.id);
    // Same query, same process, warm for both tenants.
    await warm(list(w.a.tenantId), w.a.platformToken);
    await warm(list(w.b.tenantId), w.b.token);
    const a = await ids(w.a.tenantId, w.a.platformToken);
    const bIds = await ids(w.b.tenantId, w.b.token);
    expect(a).toContain(w.a.siteId);
    expect(a).not.toContain(w.b.siteId);
    expect(bIds).toEqual([w.b.siteId]);
    // A's members and keys reading B's list with B's page cached: still not found.
    expect((await callB('GET', list(w.b.tenantId), w.a.users.owner.token)).status).toBe(404);
    expect((await callB('GET', list(w.b.tenantId), w.a.keys.owner)).status).toBe(404);

    // The cache's key: the same tenant and query under two roles are two entries.
    const cache = new SiteListCache();
    const ctx = (tenantId: string, role: TenantContext['role'], seq: number) =>
      ({ scope: TenantScope.authenticated(tenantId), role, seq }) as unknown as TenantContext;
    const viewer = ctx(w.a.tenantId, 'viewer', 7);
    const operator = ctx(w.a.tenantId, 'operator', 7);
    const otherTenant = ctx(w.b.tenantId, 'viewer', 7);
    const q = [50, undefined];
    cache.set(viewer, cache.key(viewer, q)!, { items: ['viewer page'] });
    expect(cache.get(viewer, cache.key(viewer, q)!)).toEqual({ items: ['viewer page'] });
    expect(cache.get(operator, cache.key(operator, q)!)).toBeUndefined();
    expect(cache.get(otherTenant, cache.key(otherTenant, q)!)).toBeUndefined();
    // A tenant event (the sequence moved) ends the entry.
    expect(cache.get(ctx(w.a.tenantId, 'viewer', 8), cache.key(viewer, q)!)).toBeUndefined();
  });

  it('keeps the rate limit: 429 with Retry-After past API_RATE_LIMIT', async () => {
    const limited = await startApi({ API_RATE_LIMIT: '5' });
    try {
      const statuses: number[] = [];
      let retryAfter: unknown;
      for (let i = 0; i < 7; i++) {
        const res = await limited.call('GET', '/api/v1/me', { token: 'not-a-real-token-but-long' });
        statuses.push(res.status);
        if (res.status === 429) retryAfter = res.headers['retry-after'];
      }
      expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
      expect(Number(retryAfter)).toBeGreaterThan(0);
      expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    } finally {
      await limited.close();
    }
  });
});
