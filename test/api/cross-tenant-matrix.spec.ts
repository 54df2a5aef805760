import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../apps/api/src/openapi-document';
import { buildWorld, ROLES, type World } from './fixtures';
import { startApi, type Harness } from './harness';

/**
 * Generated from the api's OpenAPI document (`openApiDocument()`, the same one the portal's
 * types come from) and the app's route table: a new endpoint is covered without editing
 * this file. For every path x method and every role (users and API keys of tenant A),
 * tenant B's ids answer 403/404 with none of B's data, and B is unchanged afterwards.
 */
describe('cross-tenant matrix (every route x every role)', () => {
  let h: Harness;
  let w: World;
  let apiRoutes: { method: string; url: string }[];
  /** Every path x method of the OpenAPI document, in `:param` form. */
  let documented: { method: string; url: string }[];
  /** B's objects beyond the fixture (an invitation, a job), made here so their ids are real. */
  const bExtra: Record<string, string> = {};

  /** Routes that end the caller's own session: exercised in the auth tests instead. */
  const SELF_DESTRUCTIVE = new Set(['POST /api/v1/auth/logout']);

  /** Plausible bodies, so a broken check would really change B (not fail validation). */
  const BODIES: Record<string, unknown> = {
    'POST /api/v1/tenants/:tenantId/sites': { name: 'pwned' },
    'PATCH /api/v1/tenants/:tenantId/sites/:siteId': { name: 'pwned' },
    'PATCH /api/v1/tenants/:tenantId': { name: 'pwned' },
    'POST /api/v1/tenants/:tenantId/invitations': { email: 'pwned@evil.test', role: 'owner' },
    'PATCH /api/v1/tenants/:tenantId/members/:userId': { role: 'viewer' },
    'POST /api/v1/tenants/:tenantId/api-keys': { name: 'pwned', role: 'owner' },
  };

  /** Path with ids filled in, plus the route's required query parameters (from OpenAPI). */
  function fill(url: string, ids: Record<string, string>, method = 'GET'): string {
    // A parameter this fixture cannot create a real object for yet gets a well-formed id
    // that exists nowhere: the route is still exercised for every role (auth, tenant and
    // role checks, no 500s, no leaks). Add real ids to the fixture to go further.
    const path = url.replace(/:([A-Za-z]+)/g, (_, name: string) => ids[name] ?? '00000000-0000-4000-8000-00000000beef');
    const op = (
      h.openapi.paths[url.replace(/:(\w+)/g, '{$1}')] as
        Record<string, { parameters?: { in: string; name: string; required?: boolean }[] }> | undefined
    )?.[method.toLowerCase()];
    const required = (op?.parameters ?? [])
      .filter((p) => p.in === 'query' && p.required)
      .map((p) => `${p.name}=ether1`);
    return required.length ? `${path}?${required.join('&')}` : path;
  }

  function principals(): { name: string; token: string; platform: boolean; apiKey: boolean }[] {
    return [
      ...ROLES.map((r) => ({ name: `user:${r}`, token: w.a.users[r].token, platform: false, apiKey: false })),
      ...ROLES.map((r) => ({ name: `key:${r}`, token: w.a.keys[r], platform: false, apiKey: true })),
      { name: 'user:owner+platform-operator', token: w.a.platformToken, platform: true, apiKey: false },
    ];
  }

  beforeAll(async () => {
    h = await startApi();
    w = await buildWorld(h);
    apiRoutes = h.routes.filter((r) => r.url.startsWith('/api/v1/'));
    const doc = await openApiDocument();
    documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops as object)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => ({ method: m.toUpperCase(), url: path.replace(/\{(\w+)\}/g, ':$1') })),
    );
    const inv = await h.call('POST', `/api/v1/tenants/${w.b.tenantId}/invitations`, {
      token: w.b.token,
      body: { email: 'someone@msp-b.test', role: 'viewer' },
    });
    if (inv.status === 201) bExtra['invitationId'] = (inv.body.id ?? inv.body.invitation?.id) as string;
    await h.call('PUT', `/api/v1/tenants/${w.b.tenantId}/sites/${w.b.siteId}/router-credentials`, {
      token: w.b.token,
      body: { username: 'admin', password: 'b-router-secret' },
    });
    const job = await h.call('POST', `/api/v1/tenants/${w.b.tenantId}/sites/${w.b.siteId}/jobs`, {
      token: w.b.token,
      body: { kind: 'reboot', payload: {} },
    });
    const jobId: unknown = job.body?.id ?? job.body?.job?.id;
    if (job.status < 300 && typeof jobId === 'string') bExtra['jobId'] = jobId;
    else throw new Error(`B's job: ${job.status} ${JSON.stringify(job.body)}`);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  function leaks(body: unknown): string[] {
    const text = JSON.stringify(body ?? '');
    return [
      w.b.tenantId,
      w.b.name,
      w.b.siteId,
      w.b.siteName,
      w.b.keyId,
      w.b.keyPrefix,
      w.b.ownerEmail,
      'someone@msp-b.test',
      ...Object.values(bExtra),
    ].filter((s) => text.includes(s));
  }

  it('enumerates the api from the app, and every route is in the OpenAPI document', () => {
    expect(apiRoutes.length).toBeGreaterThanOrEqual(25);
    const documented = new Set(
      Object.entries(h.openapi.paths).flatMap(([p, ops]) =>
        Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`),
      ),
    );
    for (const r of apiRoutes) expect(documented.has(`${r.method} ${r.url}`), `${r.method} ${r.url}`).toBe(true);
  });

  it('the OpenAPI document is the route table: every route documented, every documented route served', () => {
    expect(documented.length).toBeGreaterThanOrEqual(60);
    const served = new Set(h.routes.map((r) => `${r.method} ${r.url}`));
    for (const d of documented) expect(served.has(`${d.method} ${d.url}`), `${d.method} ${d.url}`).toBe(true);
  });

  it("every documented route, for every role of tenant A (people and API keys), refuses tenant B's ids and shows none of B's data", async () => {
    const bIds: Record<string, string> = {
      tenantId: w.b.tenantId,
      siteId: w.b.siteId,
      keyId: w.b.keyId,
      userId: w.b.ownerUserId,
      regionId: w.regionId,
      gatewayId: w.gatewayId,
      ...bExtra,
    };
    // A parameter without a real B object gets a fresh random uuid per call.
    const ids = new Proxy(bIds, { get: (t, k: string) => t[k] ?? randomUUID() });
    const calls: { route: { method: string; url: string }; p: ReturnType<typeof principals>[number] }[] = [];
    for (const route of documented) {
      if (SELF_DESTRUCTIVE.has(`${route.method} ${route.url}`)) continue;
      for (const p of principals()) calls.push({ route, p });
    }
    const check = async ({ route, p }: (typeof calls)[number]) => {
      const id = `${route.method} ${route.url}`;
      const res = await h.call(route.method, fill(route.url, ids, route.method), {
        token: p.token,
        body:
          route.method === 'GET' || route.method === 'DELETE'
            ? undefined
            : (BODIES[route.url.startsWith('/api/v1/tenants/:tenantId') ? id : ''] ?? {}),
      });
      const where = `${p.name} ${id} -> ${res.status} ${(JSON.stringify(res.body) as string | undefined)?.slice(0, 200)}`;
      const platformRoute = /^\/api\/v1\/(regions|gateways|platform)/.test(route.url) || id === 'POST /api/v1/tenants';
      // Platform operators run the platform: its routes (e.g. the platform audit log with
      // every sign-in) are theirs to read. Everything else must not show B's data.
      if (!(p.platform && platformRoute)) expect(leaks(res.body), where).toEqual([]);
      expect(res.status, where).toBeLessThan(500);
      if (!route.url.startsWith('/api/v1/')) return; // /healthz, /readyz, /metrics: no tenant data (checked above)
      if (route.url.includes(':tenantId')) {
        expect([403, 404], where).toContain(res.status);
      } else if (platformRoute) {
        if (!p.platform) expect(res.status, where).toBe(403);
      } else if (route.url.startsWith('/api/v1/gateway/') && id !== 'POST /api/v1/gateway/enroll') {
        expect(res.status, where).toBe(401);
      } else if (
        p.apiKey &&
        id !== 'POST /api/v1/invitations/accept' && // public: an invitee without an account
        !['/api/v1/auth/', '/api/v1/setup'].some((x) => route.url.startsWith(x))
      ) {
        // Personal routes (/me...) are for people, not integrations.
        if (!route.url.startsWith('/api/v1/gateway/')) expect(res.status, where).toBe(403);
      }
    };
    // Eight calls in flight: the whole matrix in seconds, not minutes.
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < calls.length) await check(calls[next++]!);
      }),
    );
    expect(calls.length).toBeGreaterThan(500);
    expect(Object.keys(bExtra).sort()).toEqual(['invitationId', 'jobId']);
  }, 60_000);

  it("tenant A's ids paired with tenant B's resource ids answer 403/404", async () => {
    const mixed = {
      tenantId: w.a.tenantId,
      siteId: w.b.siteId,
      keyId: w.b.keyId,
      userId: w.b.ownerUserId,
      regionId: w.regionId,
      gatewayId: w.gatewayId,
      ...bExtra,
    };
    for (const route of apiRoutes.filter((r) => /:tenantId\/.+:\w+/.test(r.url))) {
      for (const p of principals()) {
        const res = await h.call(route.method, fill(route.url, mixed, route.method), {
          token: p.token,
          body: route.method === 'PATCH' ? (BODIES[`${route.method} ${route.url}`] ?? {}) : undefined,
        });
        const where = `${p.name} ${route.method} ${route.url} -> ${res.status}`;
        // A body this test cannot know how to fill is refused before any lookup (400):
        // nothing of B was read or changed. Otherwise: 403 or 404.
        if (res.status === 400) expect(res.body.error.code, where).toBe('validation_failed');
        else expect([403, 404], where).toContain(res.status);
        expect(leaks(res.body), where).toEqual([]);
      }
    }
  });

  it('viewers (people and keys) cannot mutate anything in their own tenant', async () => {
    const own = {
      tenantId: w.a.tenantId,
      siteId: w.a.siteId,
      keyId: w.b.keyId,
      userId: w.a.ownerUserId,
      regionId: w.regionId,
      gatewayId: w.gatewayId,
    };
    const mutations = apiRoutes.filter((r) => r.method !== 'GET' && r.url.includes(':tenantId'));
    expect(mutations.length).toBeGreaterThanOrEqual(8);
    for (const route of mutations) {
      for (const token of [w.a.users.viewer.token, w.a.keys.viewer]) {
        const res = await h.call(route.method, fill(route.url, own, route.method), {
          token,
          body: route.method === 'DELETE' ? undefined : (BODIES[`${route.method} ${route.url}`] ?? {}),
        });
        expect(res.status, `viewer ${route.method} ${route.url}`).toBe(403);
      }
    }
  });

  it('operators (people and keys) cannot manage people, API keys or read the audit log', async () => {
    const own = {
      tenantId: w.a.tenantId,
      siteId: w.a.siteId,
      keyId: w.b.keyId,
      userId: w.a.users.viewer.userId,
      regionId: w.regionId,
      gatewayId: w.gatewayId,
    };
    const adminOnly = apiRoutes.filter(
      (r) =>
        /\/(api-keys|audit-log)/.test(r.url) ||
        r.url.includes(':tenantId/invitations') ||
        (r.url.includes('/members') && r.method !== 'GET'),
    );
    expect(adminOnly.length).toBeGreaterThanOrEqual(7);
    for (const route of adminOnly) {
      for (const token of [w.a.users.operator.token, w.a.keys.operator]) {
        const res = await h.call(route.method, fill(route.url, own, route.method), {
          token,
          body:
            route.method === 'GET' || route.method === 'DELETE'
              ? undefined
              : (BODIES[`${route.method} ${route.url}`] ?? {}),
        });
        expect(res.status, `operator ${route.method} ${route.url}`).toBe(403);
      }
    }
  });

  it('anonymous callers get 401 on every non-public route', async () => {
    const ids = {
      tenantId: w.a.tenantId,
      siteId: w.a.siteId,
      keyId: w.b.keyId,
      userId: w.a.ownerUserId,
      regionId: w.regionId,
      gatewayId: w.gatewayId,
    };
    const PUBLIC = new Set([
      'POST /api/v1/auth/login',
      'POST /api/v1/auth/login/mfa',
      'POST /api/v1/auth/refresh',
      'POST /api/v1/setup',
      'POST /api/v1/gateway/enroll',
      'POST /api/v1/invitations/accept',
    ]);
    for (const route of apiRoutes) {
      if (PUBLIC.has(`${route.method} ${route.url}`)) continue;
      const res = await h.call(route.method, fill(route.url, ids, route.method), {
        body: route.method === 'GET' ? undefined : {},
      });
      expect(res.status, `${route.method} ${route.url}`).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
    }
  });

  it('leaves tenant B exactly as it was', async () => {
    const t = await h.call('GET', `/api/v1/tenants/${w.b.tenantId}`, { token: w.b.token });
    expect(t.body.name).toBe(w.b.name);
    const sites = await h.call('GET', `/api/v1/tenants/${w.b.tenantId}/sites`, { token: w.b.token });
    expect(sites.body.items.map((s: { name: string }) => s.name)).toEqual([w.b.siteName]);
    const keys = await h.call('GET', `/api/v1/tenants/${w.b.tenantId}/api-keys`, { token: w.b.token });
    expect(keys.body.items).toHaveLength(1);
    expect(keys.body.items[0].revokedAt).toBeNull();
    const members = await h.call('GET', `/api/v1/tenants/${w.b.tenantId}/members`, { token: w.b.token });
    expect(members.body.items.map((m: { email: string; role: string }) => [m.email, m.role])).toEqual([
      [w.b.ownerEmail, 'owner'],
    ]);
    // B's own key still works for B, and only for B.
    expect((await h.call('GET', `/api/v1/tenants/${w.b.tenantId}/sites`, { token: w.b.key })).status).toBe(200);
    expect((await h.call('GET', `/api/v1/tenants/${w.a.tenantId}/sites`, { token: w.b.key })).status).toBe(404);
  });
});
