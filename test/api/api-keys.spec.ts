import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, bootstrap, login, startApi, type Harness } from './harness';

/**
 * Issue 14 finding 4: an API key belongs to a membership. It dies with it, is cut down
 * when the member's role drops, is never above its minter's role, and expires (90 days by
 * default, renewable).
 */
describe('API keys belong to a member (issue 14 finding 4)', () => {
  let h: Harness;
  let A: string;
  let owner: string;

  const call = (token: string, method: string, path: string, body?: unknown) =>
    h.call(method, `/api/v1/tenants/${A}${path}`, { token, ...(body !== undefined ? { body } : {}) });
  let n = 0;
  async function member(role: string): Promise<{ token: string; userId: string; email: string }> {
    const email = `m${++n}-${role}@keys.test`;
    const m = await addMember(h, owner, A, { email, role });
    expect(m.status).toBe(201);
    return { token: await login(h, email), userId: m.body.userId as string, email };
  }
  async function keyOf(token: string, role: string, extra: Record<string, unknown> = {}) {
    const k = await call(token, 'POST', '/api-keys', { name: `k-${++n}`, role, ...extra });
    expect(k.status, JSON.stringify(k.body)).toBe(201);
    return k.body as { id: string; key: string; createdBy: string | null; expiresAt: string; role: string };
  }

  beforeAll(async () => {
    h = await startApi();
    const boot = await bootstrap(h, 'owner@keys.test');
    A = boot.tenantId;
    owner = boot.token;
  });
  afterAll(async () => {
    await h?.close();
  });

  it("a removed admin's key stops working and cannot re-add an admin", async () => {
    const admin = await member('admin');
    const key = await keyOf(admin.token, 'admin');
    expect(key.createdBy).toBe(admin.userId);
    expect((await call(key.key, 'GET', '/sites')).status).toBe(200);
    expect((await call(owner, 'DELETE', `/members/${admin.userId}`)).status).toBe(204);
    const after = await call(key.key, 'GET', '/sites');
    expect(after.status).toBe(401);
    const reAdd = await call(key.key, 'POST', '/invitations', { email: admin.email, role: 'admin' });
    expect(reAdd.status).toBe(401);
    // a key that key minted before the removal dies with the same membership
  });

  it("a demoted member's key acts only with the new role", async () => {
    const admin = await member('admin');
    const key = await keyOf(admin.token, 'admin');
    expect((await call(key.key, 'GET', '/api-keys')).status).toBe(200);
    expect((await call(owner, 'PATCH', `/members/${admin.userId}`, { role: 'viewer' })).status).toBe(200);
    const list = await call(key.key, 'GET', '/api-keys');
    expect(list.status).toBe(403);
    expect((await call(key.key, 'POST', '/sites', { name: 'by-demoted-key' })).status).toBe(403);
    expect((await call(key.key, 'GET', '/sites')).status).toBe(200);
  });

  it('nobody mints a key above their own role; a key minted by a key belongs to the same member', async () => {
    const admin = await member('admin');
    const above = await call(admin.token, 'POST', '/api-keys', { name: 'x', role: 'owner' });
    expect(above.status).toBe(403);
    const adminKey = await keyOf(admin.token, 'admin');
    const viaKey = await call(adminKey.key, 'POST', '/api-keys', { name: 'y', role: 'owner' });
    expect(viaKey.status).toBe(403);
    const child = await keyOf(adminKey.key, 'admin');
    expect(child.createdBy).toBe(admin.userId);
    // demote the member: the child key (minted by a key) cannot mint an admin key any more
    expect((await call(owner, 'PATCH', `/members/${admin.userId}`, { role: 'operator' })).status).toBe(200);
    expect((await call(child.key, 'POST', '/api-keys', { name: 'z', role: 'admin' })).status).toBe(403);
    expect((await call(owner, 'DELETE', `/members/${admin.userId}`)).status).toBe(204);
    expect((await call(child.key, 'GET', '/sites')).status).toBe(401);
  });

  it('keys expire after 90 days by default (visible), are renewable by an admin, and expired keys are refused', async () => {
    const before = Date.now();
    const key = await keyOf(owner, 'operator');
    const exp = Date.parse(key.expiresAt);
    expect(exp).toBeGreaterThanOrEqual(before + 90 * 86_400_000 - 1000);
    expect(exp).toBeLessThanOrEqual(Date.now() + 90 * 86_400_000 + 1000);
    const listed = await call(owner, 'GET', `/api-keys/${key.id}`);
    expect(listed.body.expiresAt).toBe(key.expiresAt);
    const tooFar = await call(owner, 'POST', '/api-keys', {
      name: 'forever',
      role: 'viewer',
      expiresAt: new Date(Date.now() + 400 * 86_400_000).toISOString(),
    });
    expect(tooFar.status).toBe(400);

    const soon = await keyOf(owner, 'viewer', { expiresAt: new Date(Date.now() + 1500).toISOString() });
    expect((await call(soon.key, 'GET', '/sites')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1600));
    const expired = await call(soon.key, 'GET', '/sites');
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toContain('expired');

    const renewed = await call(owner, 'POST', `/api-keys/${soon.id}/renew`, {});
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expiresAt)).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    expect((await call(soon.key, 'GET', '/sites')).status).toBe(200);

    // an admin renews keys at most their role, not an owner's key
    const admin = await member('admin');
    const ownerKey = await keyOf(owner, 'owner');
    expect((await call(admin.token, 'POST', `/api-keys/${ownerKey.id}/renew`, {})).status).toBe(403);
    expect((await call(owner, 'DELETE', `/api-keys/${soon.id}`)).status).toBe(204);
    expect((await call(owner, 'POST', `/api-keys/${soon.id}/renew`, {})).status).toBe(409);
  });
});
