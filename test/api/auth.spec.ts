import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt, verifyTotp } from '../../apps/api/src/auth/totp';
import { addMember, bootstrap, PASSWORD, setupTokenFrom, startApi, type Harness } from './harness';

function b64url(s: string) {
  return Buffer.from(s).toString('base64url');
}

describe('authentication', () => {
  let h: Harness;
  let tenantId: string;
  let userId: string;
  let jwtKey: Uint8Array;

  beforeAll(async () => {
    h = await startApi();
    const boot = await bootstrap(h);
    tenantId = boot.tenantId;
    userId = boot.userId;
    jwtKey = new Uint8Array(hkdfSync('sha256', Buffer.from(h.signingKey), 'backplane', 'jwt-hs256', 32));
  });
  afterAll(async () => {
    await h?.close();
  });

  const sites = () => `/api/v1/tenants/${tenantId}/sites`;
  const loginRaw = (email: string, password: string, ip?: string) =>
    h.call('POST', '/api/v1/auth/login', {
      body: { email, password },
      ...(ip ? { headers: { 'x-forwarded-for': ip } } : {}),
    });

  async function session(email = 'founder@msp-a.test', password = PASSWORD) {
    const res = await loginRaw(email, password);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as { accessToken: string; refreshToken: string; expiresIn: number };
  }

  function sign(
    claims: Record<string, unknown>,
    opts: { typ?: string; aud?: string; exp?: number; key?: Uint8Array } = {},
  ) {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: opts.typ ?? 'at+jwt' })
      .setSubject(userId)
      .setIssuer('backplane')
      .setAudience(opts.aud ?? 'backplane-api')
      .setIssuedAt(now - 60)
      .setExpirationTime(opts.exp ?? now + 300)
      .sign(opts.key ?? jwtKey);
  }

  it('the setup token works exactly once and no default password exists', async () => {
    const again = await h.call('POST', '/api/v1/setup', {
      body: {
        setupToken: setupTokenFrom(h.logs),
        email: 'second@x.test',
        displayName: 'x',
        password: PASSWORD,
        tenantName: 'x',
        tenantSlug: 'x',
      },
    });
    expect(again.status).toBe(401);
    expect((await loginRaw('admin@localhost', 'admin')).status).toBe(401);
  });

  it('access tokens are short-lived and a good token works', async () => {
    const s = await session();
    expect(s.expiresIn).toBeLessThanOrEqual(900);
    const [, payload] = s.accessToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(900);
    expect(claims.iss).toBe('backplane');
    expect(claims.aud).toBe('backplane-api');
    expect((await h.call('GET', sites(), { token: s.accessToken })).status).toBe(200);
  });

  it('refuses expired, forged, alg:none, wrong-audience and wrong-type tokens', async () => {
    const s = await session();
    const [, payload] = s.accessToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const now = Math.floor(Date.now() / 1000);
    const cases: Record<string, string> = {
      expired: await sign({ sid: claims.sid }, { exp: now - 60 }),
      forged: await sign({ sid: claims.sid }, { key: new Uint8Array(32).fill(7) }),
      wrongAudience: await sign({ sid: claims.sid }, { aud: 'someone-else' }),
      wrongType: await sign({ sid: claims.sid }, { typ: 'mfa+jwt' }),
      algNone: new UnsecuredJWT({ sid: claims.sid })
        .setSubject(userId)
        .setIssuer('backplane')
        .setAudience('backplane-api')
        .setIssuedAt()
        .setExpirationTime('5m')
        .encode(),
      // HS512 with the right key: still refused, one algorithm only.
      otherAlg: '',
      tamperedPayload: `${s.accessToken.split('.')[0]}.${b64url(JSON.stringify({ ...claims, sub: '00000000-0000-4000-8000-000000000000' }))}.${s.accessToken.split('.')[2]}`,
    };
    const hs512 = `${b64url(JSON.stringify({ alg: 'HS512', typ: 'at+jwt' }))}.${payload}`;
    cases.otherAlg = `${hs512}.${createHmac('sha512', jwtKey).update(hs512).digest('base64url')}`;
    const before = await h.call('GET', '/metrics');
    for (const [name, token] of Object.entries(cases)) {
      const res = await h.call('GET', sites(), { token });
      expect(res.status, name).toBe(401);
      expect(res.body.error.code, name).toBe('unauthorized');
    }
    // A correctly signed token of ours (right key) with the same claims is accepted: the
    // refusals above are about the differences.
    expect((await h.call('GET', sites(), { token: await sign({ sid: claims.sid }) })).status).toBe(200);
    const after = await h.call('GET', '/metrics');
    const count = (text: string, reason: string) =>
      Number(
        new RegExp(`backplane_api_auth_failures_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0,
      );
    expect(count(after.body, 'expired') - count(before.body, 'expired')).toBe(1);
    expect(count(after.body, 'wrong_audience') - count(before.body, 'wrong_audience')).toBe(1);
  });

  it('rotates refresh tokens and revokes the whole family on reuse', async () => {
    const s1 = await session();
    const r2 = await h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s1.refreshToken } });
    expect(r2.status).toBe(200);
    expect(r2.body.refreshToken).not.toBe(s1.refreshToken);
    const r3 = await h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken: r2.body.refreshToken } });
    expect(r3.status).toBe(200);
    expect((await h.call('GET', sites(), { token: r3.body.accessToken })).status).toBe(200);
    // The first token again (a stolen copy): refused, and the family is gone.
    const reuse = await h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s1.refreshToken } });
    expect(reuse.status).toBe(401);
    expect(
      (await h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken: r3.body.refreshToken } })).status,
    ).toBe(401);
    expect((await h.call('GET', sites(), { token: r3.body.accessToken })).status).toBe(401);
    // Recorded for platform operators (no secrets).
    const log = await h.call('GET', '/api/v1/platform/audit-log?action=session.revoked', {
      token: (await session()).accessToken,
    });
    expect(log.body.items[0].after).toEqual({ reason: 'refresh_token_reuse', userId });
    expect(log.body.items[0].requestId).toEqual(expect.any(String));
    expect(JSON.stringify(log.body)).not.toContain(s1.refreshToken);
    // Other sessions of the same person are not affected.
    const other = await session();
    expect((await h.call('GET', sites(), { token: other.accessToken })).status).toBe(200);
  });

  it('a password change ends every session (access and refresh tokens)', async () => {
    await addMember(h, (await session()).accessToken, tenantId, {
      email: 'pw@msp-a.test',
      role: 'viewer',
      password: PASSWORD,
    });
    const a = await session('pw@msp-a.test');
    const b = await session('pw@msp-a.test');
    const wrong = await h.call('POST', '/api/v1/me/password', {
      token: a.accessToken,
      body: { currentPassword: 'not it at all', newPassword: 'another long passphrase' },
    });
    expect(wrong.status).toBe(401);
    const ok = await h.call('POST', '/api/v1/me/password', {
      token: a.accessToken,
      body: { currentPassword: PASSWORD, newPassword: 'another long passphrase' },
    });
    expect(ok.status).toBe(204);
    for (const s of [a, b]) {
      expect((await h.call('GET', sites(), { token: s.accessToken })).status).toBe(401);
      expect((await h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken: s.refreshToken } })).status).toBe(
        401,
      );
    }
    expect((await loginRaw('pw@msp-a.test', PASSWORD)).status).toBe(401);
    expect((await loginRaw('pw@msp-a.test', 'another long passphrase')).status).toBe(200);
  });

  it('answers an unknown account and a wrong password the same way, in similar time', async () => {
    const time = async (email: string) => {
      const t0 = process.hrtime.bigint();
      const res = await loginRaw(email, 'wrong password here');
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, res };
    };
    await time('warmup@nowhere.test');
    const known = [await time('founder@msp-a.test'), await time('founder@msp-a.test')];
    const unknown = [await time('ghost1@nowhere.test'), await time('ghost2@nowhere.test')];
    for (const r of [...known, ...unknown]) {
      expect(r.res.status).toBe(401);
      expect(r.res.body.error.code).toBe('unauthorized');
      expect(r.res.body.error.message).toBe('invalid email or password');
    }
    const k = Math.min(...known.map((r) => r.ms));
    const u = Math.min(...unknown.map((r) => r.ms));
    // Both pay for one argon2id verification; without the dummy hash the unknown case
    // would be ~100x faster.
    expect(u / k).toBeGreaterThan(0.4);
    expect(u / k).toBeLessThan(2.5);
    await h.redis.del(...(await h.redis.keys(`${h.prefix}thr:login-*`)));
  });

  it('throttles per (account, source) with growing delays (known or not, same answer) and per source address', async () => {
    for (const email of ['founder@msp-a.test', 'ghost@nowhere.test']) {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await loginRaw(email, `wrong-${i}`)).status);
      expect(statuses, email).toEqual([401, 401, 401, 429]);
    }
    // This source waits before trying this account again, even with the right password.
    const locked = await loginRaw('founder@msp-a.test', PASSWORD);
    expect(locked.status).toBe(429);
    expect(locked.body.error.code).toBe('rate_limited');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    // Per source address: many accounts from one address.
    await h.redis.del(...(await h.redis.keys(`${h.prefix}thr:login-*`)));
    const ipStatuses: number[] = [];
    for (let i = 0; i < 31; i++) ipStatuses.push((await loginRaw(`spray${i}@nowhere.test`, 'x')).status);
    expect(ipStatuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(ipStatuses[30]).toBe(429);
    await h.redis.del(...(await h.redis.keys(`${h.prefix}thr:login-*`)));
  }, 60_000);

  it('TOTP: enroll, verify, then login needs the code (and a code works once)', async () => {
    expect(totpAt('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 59_000)).toBe('287082'); // RFC 6238 vector
    const s = await session();
    const enroll = await h.call('POST', '/api/v1/me/mfa/enroll', {
      token: s.accessToken,
      body: { password: PASSWORD },
    });
    expect(enroll.status).toBe(200);
    const secret: string = enroll.body.secret;
    expect(enroll.body.otpauthUri).toContain(`secret=${secret}`);
    expect(
      (await h.call('POST', '/api/v1/me/mfa/verify', { token: s.accessToken, body: { code: '000000' } })).status,
    ).toBe(totpAt(secret, Date.now()) === '000000' ? 200 : 401);
    const code = totpAt(secret, Date.now());
    expect((await h.call('POST', '/api/v1/me/mfa/verify', { token: s.accessToken, body: { code } })).status).toBe(200);

    const step1 = await loginRaw('founder@msp-a.test', PASSWORD);
    expect(step1.status).toBe(200);
    expect(step1.body.mfaRequired).toBe(true);
    expect(step1.body.accessToken).toBeUndefined();
    // The step token is not an access token.
    expect((await h.call('GET', sites(), { token: step1.body.mfaToken })).status).toBe(401);
    // The code already used for enrollment is refused (replay), a later one works.
    const replay = await h.call('POST', '/api/v1/auth/login/mfa', { body: { mfaToken: step1.body.mfaToken, code } });
    const next = totpAt(secret, Date.now() + 30_000);
    expect(verifyTotp(secret, next)).not.toBeNull();
    if (next !== code) expect(replay.status).toBe(401);
    const done = await h.call('POST', '/api/v1/auth/login/mfa', {
      body: { mfaToken: step1.body.mfaToken, code: next },
    });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect((await h.call('GET', sites(), { token: done.body.accessToken })).status).toBe(200);
    const me = await h.call('GET', '/api/v1/me', { token: done.body.accessToken });
    expect(me.body.mfaEnabled).toBe(true);
    // The secret is stored encrypted, never in the clear.
    const row = await h.ds.query(`SELECT totp_secret FROM users WHERE id = $1`, [userId]);
    expect(row[0].totp_secret).toMatch(/^bp1:/);
    expect(row[0].totp_secret).not.toContain(secret);
  });

  it('API keys: shown once, stored hashed, revocable, last-used recorded, expiry honoured', async () => {
    // The founder turned MFA on above; switch it off directly to keep this test to one step.
    await h.ds.query(`UPDATE users SET totp_enabled = false WHERE id = $1`, [userId]);
    const token = (await session()).accessToken;
    const created = await h.call('POST', `/api/v1/tenants/${tenantId}/api-keys`, {
      token,
      body: { name: 'psa-sync', role: 'viewer' },
    });
    expect(created.status).toBe(201);
    const key: string = created.body.key;
    expect(key.startsWith(created.body.prefix)).toBe(true);
    const stored = await h.ds.query(`SELECT key_hash FROM api_keys WHERE id = $1`, [created.body.id]);
    expect(stored[0].key_hash).not.toContain(key.slice(12));
    const listed = await h.call('GET', `/api/v1/tenants/${tenantId}/api-keys`, { token });
    expect(JSON.stringify(listed.body)).not.toContain(key);
    expect((await h.call('GET', sites(), { token: key })).status).toBe(200);
    const after = await h.call('GET', `/api/v1/tenants/${tenantId}/api-keys/${created.body.id}`, { token });
    expect(after.body.lastUsedAt).not.toBeNull();
    // A viewer key cannot create sites.
    expect((await h.call('POST', sites(), { token: key, body: { name: 'x' } })).status).toBe(403);
    expect((await h.call('DELETE', `/api/v1/tenants/${tenantId}/api-keys/${created.body.id}`, { token })).status).toBe(
      204,
    );
    expect((await h.call('GET', sites(), { token: key })).status).toBe(401);

    const soon = await h.call('POST', `/api/v1/tenants/${tenantId}/api-keys`, {
      token,
      body: { name: 'short', role: 'viewer', expiresAt: new Date(Date.now() + 60_000).toISOString() },
    });
    await h.ds.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [soon.body.id]);
    expect((await h.call('GET', sites(), { token: soon.body.key })).status).toBe(401);
    expect((await h.call('GET', sites(), { token: 'bpk_' + 'A'.repeat(43) })).status).toBe(401);
  });

  it('caps failed authentications per source address (random tokens do not dodge the limit)', async () => {
    await h.redis.del(...(await h.redis.keys(`${h.prefix}thr:*`)));
    const good = (await session()).accessToken;
    const statuses: number[] = [];
    for (let i = 0; i < 201; i++) {
      const res = await h.call('GET', sites(), { token: `bpk_${randomBytes(32).toString('base64url')}` });
      statuses.push(res.status);
    }
    expect(statuses.slice(0, 200).every((s) => s === 401)).toBe(true);
    expect(statuses[200]).toBe(429);
    // A good token from the same address is still served (the cap never locks people out).
    expect((await h.call('GET', sites(), { token: good })).status).toBe(200);
    await h.redis.del(...(await h.redis.keys(`${h.prefix}thr:*`)));
  });
});
