/**
 * Issue 14 finding 8: MFA changes need the password again and enabling MFA ends the other
 * sessions; new passwords are not common and do not contain the email; API answers are not
 * cached; the API docs page carries the portal's Content-Security-Policy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../apps/api/src/auth/totp';
import { bootstrap, PASSWORD, startApi, type Harness } from './harness';

let h: Harness;
let tenantId: string;
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

beforeAll(async () => {
  h = await startApi({ METRICS_TOKEN });
  tenantId = (await bootstrap(h)).tenantId;
}, 60_000);
afterAll(async () => {
  await h?.close();
});

async function signIn(email = 'founder@msp-a.test', password = PASSWORD) {
  const res = await h.call('POST', '/api/v1/auth/login', { body: { email, password } });
  expect(res.status).toBe(200);
  return res.body as { accessToken: string; refreshToken: string };
}

describe('account hardening (issue 14 finding 8)', () => {
  it('MFA: enrolling and disabling need the password; enabling ends every other session', async () => {
    const here = await signIn();
    const elsewhere = await signIn();
    const sites = `/api/v1/tenants/${tenantId}/sites`;
    expect((await h.call('GET', sites, { token: elsewhere.accessToken })).status).toBe(200);

    const bare = await h.call('POST', '/api/v1/me/mfa/enroll', { token: here.accessToken, body: {} });
    expect(bare.status).toBe(400);
    const wrong = await h.call('POST', '/api/v1/me/mfa/enroll', {
      token: here.accessToken,
      body: { password: 'not the password at all' },
    });
    expect(wrong.status).toBe(401);
    const enroll = await h.call('POST', '/api/v1/me/mfa/enroll', {
      token: here.accessToken,
      body: { password: PASSWORD },
    });
    expect(enroll.status).toBe(200);
    const secret = enroll.body.secret as string;
    const code = totpAt(secret, Date.now());
    expect((await h.call('POST', '/api/v1/me/mfa/verify', { token: here.accessToken, body: { code } })).status).toBe(
      200,
    );

    // the other session is over (its access token and its refresh token); this one goes on
    expect((await h.call('GET', sites, { token: elsewhere.accessToken })).status).toBe(401);
    const refresh = await h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken: elsewhere.refreshToken } });
    expect(refresh.status).toBe(401);
    expect((await h.call('GET', sites, { token: here.accessToken })).status).toBe(200);

    // turning it off: a code alone is not enough
    const next = totpAt(secret, Date.now() + 30_000);
    const codeOnly = await h.call('DELETE', '/api/v1/me/mfa', { token: here.accessToken, body: { code: next } });
    expect(codeOnly.status).toBe(400);
    const badPassword = await h.call('DELETE', '/api/v1/me/mfa', {
      token: here.accessToken,
      body: { code: next, password: 'not the password at all' },
    });
    expect(badPassword.status).toBe(401);
    const off = await h.call('DELETE', '/api/v1/me/mfa', {
      token: here.accessToken,
      body: { code: next, password: PASSWORD },
    });
    expect(off.status).toBe(204);
  }, 60_000);

  it('new passwords: not common (also with digits appended), not the email or containing it, 12-256', async () => {
    const { accessToken } = await signIn();
    const change = (newPassword: string) =>
      h.call('POST', '/api/v1/me/password', { token: accessToken, body: { currentPassword: PASSWORD, newPassword } });
    for (const common of ['1qaz2wsx3edc', 'QWERTY123456', 'password1234', 'Sunshine2024!!', 'iloveyou12345']) {
      const res = await change(common);
      expect(res.status, common).toBe(400);
      expect(JSON.stringify(res.body.error), common).toContain('commonly used');
    }
    for (const withEmail of ['founder@msp-a.test', 'x-founder@msp-a.test-x', 'my FOUNDER@msp-a.test login']) {
      const res = await change(withEmail);
      expect(res.status, withEmail).toBe(400);
      expect(JSON.stringify(res.body.error), withEmail).toContain('email');
    }
    expect((await change('short')).status).toBe(400);
    expect((await change('x'.repeat(257))).status).toBe(400);
    // nothing above changed the password
    await signIn();
  }, 60_000);

  it('API answers carry Cache-Control: no-store; the API docs page carries the portal CSP', async () => {
    const res = await h.call('POST', '/api/v1/auth/login', {
      body: { email: 'founder@msp-a.test', password: PASSWORD },
    });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const me = await h.call('GET', '/api/v1/me', { token: res.body.accessToken as string });
    expect(me.headers['cache-control']).toBe('no-store');
    const docs = await h.call('GET', '/api/docs');
    expect(String(docs.headers['content-security-policy'])).toContain("script-src 'self'");
    expect(String(docs.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
  });

  it('/metrics answers loopback peers and scrapers with METRICS_TOKEN, nobody else', async () => {
    const get = (remoteAddress: string, headers: Record<string, string> = {}) =>
      h.app.inject({ method: 'GET', url: '/metrics', remoteAddress, headers });
    expect((await get('127.0.0.1')).statusCode).toBe(200);
    expect((await get('203.0.113.5')).statusCode).toBe(403);
    expect((await get('203.0.113.5', { authorization: 'Bearer wrong-token-0123456789abcdef' })).statusCode).toBe(403);
    expect((await get('127.0.0.1', { 'x-forwarded-for': '203.0.113.5' })).statusCode).toBe(403);
    const scraped = await get('203.0.113.5', { authorization: `Bearer ${METRICS_TOKEN}` });
    expect(scraped.statusCode).toBe(200);
    expect(scraped.body).toContain('process_cpu');
  });
});
