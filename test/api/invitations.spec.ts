import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap, createTenant, login, PASSWORD, startApi, type Harness } from './harness';

/**
 * Issue 14 finding 1: a tenant can never set or learn anything about an account it does not
 * own. Adding someone is an invitation; the membership exists only after acceptance.
 */
describe('invitations (no account pre-creation, no disclosure)', () => {
  let h: Harness;
  let A: string;
  let ownerA: string;
  let B: string;
  let ownerB: string;
  const B_CHOSEN = 'chosen-by-tenant-b-admin';
  const NEWHIRE_OWN = 'newhire picked this one';

  const invite = (token: string, tenantId: string, body: Record<string, unknown>) =>
    h.call('POST', `/api/v1/tenants/${tenantId}/invitations`, { token, body });
  const accept = (token: string, password: string) =>
    h.call('POST', '/api/v1/invitations/accept', { body: { token, password } });
  const signIn = (email: string, password: string) =>
    h.call('POST', '/api/v1/auth/login', { body: { email, password } });

  beforeAll(async () => {
    h = await startApi();
    const boot = await bootstrap(h, 'owner@a.test');
    A = boot.tenantId;
    ownerA = boot.token;
    const tb = await createTenant(h, ownerA, { slug: 'tenant-b', name: 'B', owner: { email: 'owner@b.test' } });
    B = tb.body.id as string;
    ownerB = await login(h, 'owner@b.test');
  });
  afterAll(async () => {
    await h?.close();
  });

  it("pre-creation: tenant B cannot choose the password of A's future admin", async () => {
    // The old attack: add the email with a password of B's choosing. The route is gone and
    // an invitation takes no password.
    const old = await h.call('POST', `/api/v1/tenants/${B}/members`, {
      token: ownerB,
      body: { email: 'newhire@a.test', role: 'viewer', password: B_CHOSEN },
    });
    expect([404, 405]).toContain(old.status);
    const withPw = await invite(ownerB, B, { email: 'newhire@a.test', role: 'viewer', password: B_CHOSEN });
    expect(withPw.status).toBe(400);
    // B invites, then removes (revokes) the invitation.
    const byB = await invite(ownerB, B, { email: 'newhire@a.test', role: 'viewer' });
    expect(byB.status).toBe(201);
    expect((await h.call('DELETE', `/api/v1/tenants/${B}/invitations/${byB.body.id}`, { token: ownerB })).status).toBe(
      204,
    );
    expect((await signIn('newhire@a.test', B_CHOSEN)).status).toBe(401);
    // A's owner invites the same email as admin; the newhire sets their own password.
    const byA = await invite(ownerA, A, { email: 'newhire@a.test', role: 'admin' });
    expect(byA.status).toBe(201);
    expect((await accept(byA.body.token, NEWHIRE_OWN)).status).toBe(201);
    expect((await signIn('newhire@a.test', B_CHOSEN)).status).toBe(401);
    const own = await signIn('newhire@a.test', NEWHIRE_OWN);
    expect(own.status).toBe(200);
    const mine = await h.call('GET', '/api/v1/tenants', { token: own.body.accessToken });
    expect(mine.body.items.map((t: { id: string; role: string }) => [t.id, t.role])).toEqual([[A, 'admin']]);
    // B's revoked link is dead.
    expect((await accept(byB.body.token, B_CHOSEN)).status).toBe(404);
  });

  it('an inviter who uses its own link to squat the email gains nothing in another tenant', async () => {
    const byB = await invite(ownerB, B, { email: 'squat@a.test', role: 'viewer' });
    expect((await accept(byB.body.token, B_CHOSEN)).status).toBe(201); // B made an account with its password
    const byA = await invite(ownerA, A, { email: 'squat@a.test', role: 'admin' });
    expect(byA.status).toBe(201);
    // A's link cannot set or reset the password of an existing account...
    const attempt = await accept(byA.body.token, 'another password entirely');
    expect(attempt.status).toBe(409);
    expect((await signIn('squat@a.test', 'another password entirely')).status).toBe(401);
    // ...and B's login is not in A: a membership needs A's token, which only A handed out.
    const squatter = await signIn('squat@a.test', B_CHOSEN);
    const mine = await h.call('GET', '/api/v1/tenants', { token: squatter.body.accessToken });
    expect(mine.body.items.map((t: { id: string }) => t.id)).toEqual([B]);
  });

  it('existing and unknown emails get answers identical in shape and fields (nothing about the account)', async () => {
    const existing = await invite(ownerB, B, { email: 'owner@a.test', role: 'admin' }); // A's owner, MFA or not
    const unknown = await invite(ownerB, B, { email: 'nobody@a.test', role: 'admin' });
    expect(existing.status).toBe(201);
    expect(unknown.status).toBe(201);
    expect(Object.keys(existing.body).sort()).toEqual(Object.keys(unknown.body).sort());
    expect(Object.keys(existing.body).sort()).toEqual(
      ['acceptUrl', 'createdAt', 'email', 'expiresAt', 'id', 'role', 'status', 'token'].sort(),
    );
    for (const body of [existing.body, unknown.body]) {
      expect(body.status).toBe('pending');
      const text = JSON.stringify(body);
      expect(text).not.toMatch(/displayName|mfa|userId|Owner A/i);
    }
    // The pending lists hold the same fields for both, and the email is not enrolled.
    const list = await h.call('GET', `/api/v1/tenants/${B}/invitations`, { token: ownerB });
    const rows = list.body.items.filter((i: { email: string }) => ['owner@a.test', 'nobody@a.test'].includes(i.email));
    expect(rows).toHaveLength(2);
    expect(Object.keys(rows[0]).sort()).toEqual(Object.keys(rows[1]).sort());
    const members = await h.call('GET', `/api/v1/tenants/${B}/members`, { token: ownerB });
    expect(JSON.stringify(members.body)).not.toContain('owner@a.test');
    const mineA = await h.call('GET', '/api/v1/tenants', { token: ownerA });
    expect(mineA.body.items.map((t: { id: string }) => t.id)).not.toContain(B);
  });

  it('a membership exists only after acceptance; an existing account accepts signed in, as the invited email only', async () => {
    const inv = await invite(ownerB, B, { email: 'owner@a.test', role: 'viewer' });
    const members = async () =>
      ((await h.call('GET', `/api/v1/tenants/${B}/members`, { token: ownerB })).body.items as { email: string }[]).map(
        (m: { email: string }) => m.email,
      );
    expect(await members()).not.toContain('owner@a.test');
    // The public route never touches an existing account.
    expect((await accept(inv.body.token, 'overwrite attempt 123')).status).toBe(409);
    expect((await signIn('owner@a.test', 'overwrite attempt 123')).status).toBe(401);
    // Someone else signed in cannot take the invitation.
    const other = await login(h, 'newhire@a.test', NEWHIRE_OWN);
    const wrong = await h.call('POST', '/api/v1/invitations/accept-signed-in', {
      token: other,
      body: { token: inv.body.token },
    });
    expect(wrong.status).toBe(403);
    expect(await members()).not.toContain('owner@a.test');
    const right = await h.call('POST', '/api/v1/invitations/accept-signed-in', {
      token: ownerA,
      body: { token: inv.body.token },
    });
    expect(right.status).toBe(201);
    expect(right.body).toMatchObject({ tenantId: B, role: 'viewer' });
    expect(await members()).toContain('owner@a.test');
    expect((await signIn('owner@a.test', PASSWORD)).status).toBe(200);
  });

  it('tokens are single-use, revocable and expire; only hashes are stored', async () => {
    const inv = await invite(ownerA, A, { email: 'once@a.test', role: 'viewer' });
    expect((await accept(inv.body.token, 'my own password 1')).status).toBe(201);
    expect((await accept(inv.body.token, 'my own password 2')).status).toBe(404);
    expect((await signIn('once@a.test', 'my own password 2')).status).toBe(401);

    const late = await invite(ownerA, A, { email: 'late@a.test', role: 'viewer' });
    await h.ds.query(`UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1`, [late.body.id]);
    const listed = await h.call('GET', `/api/v1/tenants/${A}/invitations`, { token: ownerA });
    expect(listed.body.items.find((i: { id: string }) => i.id === late.body.id)?.status).toBe('expired');
    expect((await accept(late.body.token, 'my own password 3')).status).toBe(404);
    expect((await signIn('late@a.test', 'my own password 3')).status).toBe(401);

    // Re-inviting replaces the pending link.
    const first = await invite(ownerA, A, { email: 'twice@a.test', role: 'viewer' });
    const second = await invite(ownerA, A, { email: 'twice@a.test', role: 'operator' });
    expect((await accept(first.body.token, 'my own password 4')).status).toBe(404);
    expect((await accept(second.body.token, 'my own password 4')).status).toBe(201);

    const stored = await h.ds.query<{ token_hash: string }[]>(`SELECT token_hash FROM invitations`);
    const all = JSON.stringify(stored);
    for (const t of [inv.body.token, late.body.token, first.body.token]) expect(all).not.toContain(t);
  });

  it('concurrent accepts of one token: exactly one wins, one password works, one membership', async () => {
    const inv = await invite(ownerA, A, { email: 'race@a.test', role: 'viewer' });
    const passwords = Array.from({ length: 8 }, (_, i) => `race password number ${i}`);
    const answers = await Promise.all(passwords.map((pw) => accept(inv.body.token, pw)));
    const won = answers.map((a, i) => ({ status: a.status, pw: passwords[i]! })).filter((a) => a.status === 201);
    expect(won).toHaveLength(1);
    for (const a of answers) expect([201, 404]).toContain(a.status);
    // The winner's password signs in first (before the failed attempts could throttle the
    // account); every other racer's password is refused.
    expect((await signIn('race@a.test', won[0]!.pw)).status).toBe(200);
    for (const pw of passwords.filter((p) => p !== won[0]!.pw)) {
      expect((await signIn('race@a.test', pw)).status).not.toBe(200);
    }
    const rows = await h.ds.query<{ n: string }[]>(
      `SELECT count(*) AS n FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'race@a.test'`,
    );
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('only admins invite, never above their own role; the platform invites a tenant owner without touching accounts', async () => {
    const op = await invite(ownerA, A, { email: 'op@a.test', role: 'operator' });
    await accept(op.body.token, 'operator password');
    const opToken = await login(h, 'op@a.test', 'operator password');
    expect((await invite(opToken, A, { email: 'x@a.test', role: 'viewer' })).status).toBe(403);
    const adminToken = await login(h, 'newhire@a.test', NEWHIRE_OWN);
    expect((await invite(adminToken, A, { email: 'x@a.test', role: 'owner' })).status).toBe(403);
    // Tenant creation for an existing email: an owner invitation, the account is unchanged.
    const t = await h.call('POST', '/api/v1/tenants', {
      token: ownerA,
      body: { slug: 'tenant-c', name: 'C', owner: { email: 'owner@b.test', password: 'operator-chosen-pw' } },
    });
    expect(t.status).toBe(400); // no password can be given
    const c = await h.call('POST', '/api/v1/tenants', {
      token: ownerA,
      body: { slug: 'tenant-c', name: 'C', owner: { email: 'owner@b.test' } },
    });
    expect(c.status).toBe(201);
    expect(Object.keys(c.body.ownerInvitation).sort()).toEqual(
      ['acceptUrl', 'createdAt', 'email', 'expiresAt', 'id', 'role', 'status', 'token'].sort(),
    );
    expect(c.body.ownerInvitation.acceptUrl).toMatch(/\/accept-invite\?token=bpi_/);
    const ownerBNow = await login(h, 'owner@b.test');
    const before = await h.call('GET', '/api/v1/tenants', { token: ownerBNow });
    expect(before.body.items.map((x: { id: string }) => x.id)).not.toContain(c.body.id);
  });
});
