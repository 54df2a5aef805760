import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorld, type World } from './fixtures';
import { startApi, type Harness } from './harness';

const BODY_LIMIT = 16 * 1024;

/**
 * Every endpoint that takes a body (found in the OpenAPI document generated from the
 * code) answers malformed, wrongly typed and oversized input with a clear 4xx in the
 * one error shape, and a bounded random-JSON fuzz yields no 500.
 */
describe('bad input on every endpoint', () => {
  let h: Harness;
  let w: World;
  let withBody: { method: string; url: string }[];
  let withQuery: { method: string; url: string; params: string[] }[];

  beforeAll(async () => {
    h = await startApi({ API_BODY_LIMIT: String(BODY_LIMIT) });
    w = await buildWorld(h);
    const ops = Object.entries(h.openapi.paths).flatMap(([path, item]) =>
      Object.entries(
        item as Record<string, { requestBody?: unknown; parameters?: { in: string; name: string }[] }>,
      ).map(([method, op]) => ({ method: method.toUpperCase(), url: path.replace(/\{(\w+)\}/g, ':$1'), op })),
    );
    withBody = ops
      .filter((o) => o.op.requestBody && o.url.startsWith('/api/'))
      .filter((o) => !(o.method === 'POST' && o.url === '/api/v1/auth/logout'));
    withQuery = ops
      .map((o) => ({ ...o, params: (o.op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name) }))
      .filter((o) => o.params.length > 0);
  });
  afterAll(async () => {
    await h?.close();
  });

  function fill(url: string): string {
    const ids: Record<string, string> = {
      tenantId: w.a.tenantId,
      siteId: w.a.siteId,
      keyId: '00000000-0000-4000-8000-000000000001',
      userId: w.a.users.viewer.userId,
      regionId: w.regionId,
      gatewayId: '00000000-0000-4000-8000-000000000002',
    };
    return url.replace(/:(\w+)/g, (_, n: string) => ids[n]!);
  }
  const tokenFor = (url: string) => (url.startsWith('/api/v1/gateway/') ? w.gatewayCredential : w.a.platformToken);

  function expectClear400(res: Awaited<ReturnType<Harness['call']>>, where: string) {
    expect(res.status, `${where}: ${JSON.stringify(res.body)}`).toBe(400);
    expect(res.body.error.code, where).toMatch(/^(validation_failed|invalid_json)$/);
    expect(res.body.error.message.length, where).toBeGreaterThan(5);
    expect(typeof res.body.error.requestId).toBe('string');
  }

  it('covers the endpoints that take bodies', () => {
    expect(withBody.length).toBeGreaterThanOrEqual(15);
  });

  it('malformed JSON -> 400 invalid_json', async () => {
    for (const r of withBody) {
      const res = await h.call(r.method, fill(r.url), { token: tokenFor(r.url), raw: '{"name": "x",' });
      expectClear400(res, `${r.method} ${r.url}`);
      expect(res.body.error.code).toBe('invalid_json');
    }
  });

  it('wrongly typed bodies and fields -> 400 naming the problem', async () => {
    for (const r of withBody) {
      for (const raw of ['[]', '"text"', '12', 'null', '{"name": 12, "unexpected": true}']) {
        const res = await h.call(r.method, fill(r.url), { token: tokenFor(r.url), raw });
        // Bodies where every field is optional accept {} but never unknown keys or non-objects.
        expectClear400(res, `${r.method} ${r.url} ${raw}`);
      }
    }
    const res = await h.call('POST', `/api/v1/tenants/${w.a.tenantId}/sites`, {
      token: w.a.platformToken,
      body: { name: 12, latitude: 'north', extra: 1 },
    });
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual(
      expect.arrayContaining(['body.name', 'body.latitude']),
    );
    expect(JSON.stringify(res.body.error.details)).toContain('extra');
  });

  it('oversized fields -> 400; bodies over API_BODY_LIMIT -> 413 in the same error shape', async () => {
    const long = 'x'.repeat(BODY_LIMIT / 2);
    const field = await h.call('POST', `/api/v1/tenants/${w.a.tenantId}/sites`, {
      token: w.a.platformToken,
      body: { name: long },
    });
    expectClear400(field, 'long name');
    for (const r of withBody) {
      const res = await h.call(r.method, fill(r.url), {
        token: tokenFor(r.url),
        raw: JSON.stringify({ name: 'x'.repeat(BODY_LIMIT * 2) }),
      });
      expect(res.status, `${r.method} ${r.url}`).toBe(413);
      expect(res.body.error.code).toBe('payload_too_large');
    }
  });

  it('wrongly typed query parameters -> 400', async () => {
    for (const r of withQuery) {
      const q = r.params.includes('limit') ? 'limit=lots' : `${r.params[0]}=${'%00'.repeat(3)}&bogus=1`;
      const res = await h.call(r.method, `${fill(r.url)}?${q}`, { token: tokenFor(r.url) });
      expectClear400(res, `${r.method} ${r.url}?${q}`);
    }
    const badCursor = await h.call('GET', `/api/v1/tenants/${w.a.tenantId}/sites?cursor=not-a-cursor`, {
      token: w.a.platformToken,
    });
    expectClear400(badCursor, 'cursor');
  });

  it('a bounded random-JSON fuzz over every endpoint yields zero 500s', async () => {
    const statuses = new Map<number, number>();
    const arb = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.dictionary(
        fc.constantFrom(
          'name',
          'email',
          'role',
          'tags',
          'latitude',
          'longitude',
          'password',
          'slug',
          'code',
          'token',
          'owner',
          'notes',
          'publicPort',
          'expiresAt',
        ),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    );
    for (const r of withBody) {
      await fc.assert(
        fc.asyncProperty(arb, async (body) => {
          const res = await h.call(r.method, fill(r.url), { token: tokenFor(r.url), raw: JSON.stringify(body) });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          return res.status < 500 && (typeof res.body?.error?.code === 'string') === res.status >= 400;
        }),
        { numRuns: 25, seed: 20261122 },
      );
    }
    expect(statuses.has(500)).toBe(false);
    expect([...statuses.keys()].some((s) => s === 400)).toBe(true);
  }, 120_000);
});
