/**
 * Issue 14 finding 8 (rest): recovery codes (shown once, single use, stored as keyed digests,
 * regenerated with password + code) and the tenant policy "MFA required" (ADR 0054).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../apps/api/src/auth/totp';
import { addMember, bootstrap, login, PASSWORD, startApi, type Harness } from './harness';

let h: Harness;
let tenantId: string;
let ownerToken: string;

beforeAll(async () => {
  h = await startApi();
  const b = await bootstrap(h);
  tenantId = b.tenantId;
  ownerToken = b.token;
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** Enrols the signed-in account; returns its TOTP secret and recovery codes. */
async function enrol(token: string): Promise<{ secret: string; recoveryCodes: string[] }> {
  const enroll = await h.call('POST', '/api/v1/me/mfa/enroll', { token, body: { password: PASSWORD } });
  expect(enroll.status).toBe(200);
  const secret = enroll.body.secret as string;
  const verify = await h.call('POST', '/api/v1/me/mfa/verify', { token, body: { code: totpAt(secret, Date.now()) } });
  expect(verify.status).toBe(200);
  return { secret, recoveryCodes: verify.body.recoveryCodes as string[] };
}

async function mfaStep(email: string, code: string) {
  const step1 = await h.call('POST', '/api/v1/auth/login', { body: { email, password: PASSWORD } });
  expect(step1.status).toBe(200);
  expect(step1.body.mfaRequired).toBe(true);
  return h.call('POST', '/api/v1/auth/login/mfa', { body: { mfaToken: step1.body.mfaToken, code } });
}

describe('MFA recovery codes', () => {
  it('enabling MFA shows 10 codes once; each signs in once; they are not stored in clear; regenerate replaces them', async () => {
    const email = 'recovery@msp-a.test';
    expect((await addMember(h, ownerToken, tenantId, { email, role: 'viewer' })).status).toBe(201);
    const token = await login(h, email);
    const { secret, recoveryCodes } = await enrol(token);
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    for (const c of recoveryCodes) expect(c).toMatch(/^[a-z2-9]{5}-[a-z2-9]{5}$/);

    // stored as digests only: no code (with or without the dash) appears in the row
    const [row] = await h.ds.query<{ codes: string }[]>(
      `SELECT recovery_codes::text AS codes, cardinality(recovery_codes) AS n FROM users WHERE email = $1`,
      [email],
    );
    expect(row!.codes.length).toBeGreaterThan(100);
    for (const c of recoveryCodes) {
      expect(row!.codes).not.toContain(c);
      expect(row!.codes).not.toContain(c.replace('-', ''));
    }

    const me = await h.call('GET', '/api/v1/me', { token });
    expect(me.body.mfaEnabled).toBe(true);
    expect(me.body.mfaRecoveryCodesLeft).toBe(10);

    // a recovery code replaces the TOTP code (typed in upper case without the dash, too) ...
    const first = recoveryCodes[0]!;
    const ok = await mfaStep(email, first.replace('-', '').toUpperCase());
    expect(ok.status).toBe(200);
    expect(typeof ok.body.accessToken).toBe('string');
    // ... once
    const again = await mfaStep(email, first);
    expect(again.status).toBe(401);
    const left = await h.call('GET', '/api/v1/me', { token: ok.body.accessToken as string });
    expect(left.body.mfaRecoveryCodesLeft).toBe(9);

    // regenerating needs the password and a current code; the old codes stop working
    const code = totpAt(secret, Date.now() + 30_000);
    const noPassword = await h.call('POST', '/api/v1/me/mfa/recovery-codes', { token, body: { code } });
    expect(noPassword.status).toBe(400);
    const wrongPassword = await h.call('POST', '/api/v1/me/mfa/recovery-codes', {
      token,
      body: { code, password: 'not the password at all' },
    });
    expect(wrongPassword.status).toBe(401);
    const regen = await h.call('POST', '/api/v1/me/mfa/recovery-codes', { token, body: { code, password: PASSWORD } });
    expect(regen.status).toBe(200);
    const fresh = regen.body.recoveryCodes as string[];
    expect(fresh).toHaveLength(10);
    expect((await mfaStep(email, recoveryCodes[1]!)).status).toBe(401);
    expect((await mfaStep(email, fresh[0]!)).status).toBe(200);

    // someone who lost the phone turns MFA off with the password and a recovery code
    const off = await h.call('DELETE', '/api/v1/me/mfa', { token, body: { code: fresh[1], password: PASSWORD } });
    expect(off.status).toBe(204);
    const after = await h.call('GET', '/api/v1/me', { token });
    expect(after.body.mfaEnabled).toBe(false);
    expect(after.body.mfaRecoveryCodesLeft).toBe(0);
    await login(h, email); // one step again
  }, 60_000);
});

describe('tenant policy: MFA required', () => {
  it('a member without MFA gets 403 mfa_required on tenant routes (not /me) until they enrol', async () => {
    const sites = `/api/v1/tenants/${tenantId}/sites`;
    const email = 'no-mfa@msp-a.test';
    expect((await addMember(h, ownerToken, tenantId, { email, role: 'operator' })).status).toBe(201);
    const member = await login(h, email);

    // the owner must have MFA before requiring it
    const early = await h.call('PATCH', `/api/v1/tenants/${tenantId}`, {
      token: ownerToken,
      body: { mfaRequired: true },
    });
    expect(early.status).toBe(409);
    await enrol(ownerToken);
    const set = await h.call('PATCH', `/api/v1/tenants/${tenantId}`, {
      token: ownerToken,
      body: { mfaRequired: true },
    });
    expect(set.status).toBe(200);
    expect(set.body.mfaRequired).toBe(true);
    // members cannot change the policy
    const byMember = await h.call('PATCH', `/api/v1/tenants/${tenantId}`, {
      token: member,
      body: { mfaRequired: false },
    });
    expect(byMember.status).toBe(403);

    const refused = await h.call('GET', sites, { token: member });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('mfa_required');
    const me = await h.call('GET', '/api/v1/me', { token: member });
    expect(me.status).toBe(200);
    expect(me.body.mfaEnabled).toBe(false);

    // after enrolment the same session works
    await enrol(member);
    expect((await h.call('GET', sites, { token: member })).status).toBe(200);
    // the owner (with MFA) was never refused
    expect((await h.call('GET', sites, { token: ownerToken })).status).toBe(200);

    // switching the policy off again needs no MFA of anyone
    const off = await h.call('PATCH', `/api/v1/tenants/${tenantId}`, {
      token: ownerToken,
      body: { mfaRequired: false },
    });
    expect(off.status).toBe(200);
    expect(off.body.mfaRequired).toBe(false);
  }, 60_000);
});
