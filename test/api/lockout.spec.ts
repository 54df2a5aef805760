import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_FAILURES_PER_IP } from '../../apps/api/src/auth/auth.guard';
import { bootstrap, PASSWORD, startApi, type Harness } from './harness';

/**
 * Issue 14 finding 5: nobody can lock someone else out. Sign-in failures slow down only the
 * (account, source) pair that makes them; a flood of bad tokens from an address never blocks a
 * valid credential from it. The api runs behind a (simulated) proxy: TRUST_PROXY names the
 * test's loopback peer, so X-Forwarded-For is each request's source address.
 */
describe('outsider lockout', () => {
  let h: Harness;
  let tenantId: string;
  const EMAIL = 'founder@lockout.test';

  const login = (password: string, source: string) =>
    h.call('POST', '/api/v1/auth/login', {
      body: { email: EMAIL, password },
      headers: { 'x-forwarded-for': source },
    });
  const sites = (token: string, source: string) =>
    h.call('GET', `/api/v1/tenants/${tenantId}/sites`, { token, headers: { 'x-forwarded-for': source } });

  beforeAll(async () => {
    h = await startApi({ TRUST_PROXY: '127.0.0.1' });
    tenantId = (await bootstrap(h, EMAIL)).tenantId;
  });
  afterAll(async () => {
    await h?.close();
  });

  it("an outsider's 20 bad passwords from X do not stop the real user signing in from Y", async () => {
    const outsider = '198.51.100.66';
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await login(`guess number ${i}`, outsider)).status);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(3); // then made to wait
    expect(statuses.slice(3).every((s) => s === 429)).toBe(true);
    // Even the right password waits from the outsider's address...
    const fromX = await login(PASSWORD, outsider);
    expect(fromX.status).toBe(429);
    expect(Number(fromX.headers['retry-after'])).toBeGreaterThan(0);
    // ...but the account is not locked: its owner signs in from elsewhere.
    const fromY = await login(PASSWORD, '203.0.113.10');
    expect(fromY.status).toBe(200);
    expect(fromY.body.accessToken).toBeTruthy();
  });

  it('the wait of a pair grows with each failure after it expires', async () => {
    const src = '198.51.100.77';
    for (let i = 0; i < 3; i++) await login(`wrong ${i}`, src);
    const first = Number((await login('again', src)).headers['retry-after']);
    // Let the wait pass (expire it, instead of sleeping), fail once more: the next wait doubles.
    await h.redis.del(...(await h.redis.keys(`${h.prefix}thr:login-wait:*`)));
    expect((await login('still wrong', src)).status).toBe(401);
    const second = Number((await login('again', src)).headers['retry-after']);
    expect(second).toBeGreaterThan(first);
  });

  it('after 300 bad tokens from an address, a valid token from it still works', async () => {
    const noisy = '192.0.2.99';
    const good = (await login(PASSWORD, '203.0.113.11')).body.accessToken as string;
    const statuses: number[] = [];
    for (let i = 0; i < 300; i++) {
      statuses.push((await sites(`bpk_${randomBytes(32).toString('base64url')}`, noisy)).status);
    }
    expect(statuses.slice(0, AUTH_FAILURES_PER_IP).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(AUTH_FAILURES_PER_IP).every((s) => s === 429)).toBe(true);
    const valid = await sites(good, noisy);
    expect(valid.status).toBe(200);
    // Bad ones from that address stay refused (429), other addresses are unaffected.
    expect((await sites('bpk_' + randomBytes(32).toString('base64url'), noisy)).status).toBe(429);
    expect((await sites('bpk_' + randomBytes(32).toString('base64url'), '192.0.2.100')).status).toBe(401);
  }, 60_000);

  it('no TRUST_PROXY warning when it is set', () => {
    expect(h.logs.some((l) => l.includes('TRUST_PROXY is not set'))).toBe(false);
  });
});

describe('X-Forwarded-For without TRUST_PROXY', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startApi();
    await bootstrap(h, 'someone@proxy.test');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is warned about once, in the log', async () => {
    for (let i = 0; i < 3; i++) {
      await h.call('GET', '/api/v1/me', { headers: { 'x-forwarded-for': `198.51.100.${i}` } });
    }
    const warnings = h.logs.filter((l) => l.includes('X-Forwarded-For but TRUST_PROXY is not set'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!).level).toBe('warn');
  });
});
