import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RealtimeServer, MAX_SUBSCRIPTIONS_PER_SOCKET } from '../../apps/api/src/realtime/realtime.server';
import { addMember, login, PASSWORD } from '../api/harness';
import { startControlPlane, type ControlPlane } from '../gateway/control-plane';
import { client, sleep, until, type TestClient } from './realtime-helpers';

/**
 * Revocations reach open sockets at once (not when the access token expires, up to 15 min
 * later): the socket is disconnected on every replica and its reconnect goes through the
 * handshake again. And the per-socket cap on site-stream subscriptions.
 */
describe('realtime revocation and caps', () => {
  let cp: ControlPlane;
  const clients: (TestClient & { disconnects: string[] })[] = [];
  let n = 0;

  const open = (...args: Parameters<typeof client>) => {
    const c = client(...args);
    const disconnects: string[] = [];
    c.rt.socket.on('disconnect', (reason) => disconnects.push(reason));
    const tc = Object.assign(c, { disconnects });
    clients.push(tc);
    return tc;
  };
  /** A new member of the tenant with `role`, signed in. */
  const member = async (role: 'viewer' | 'operator' | 'admin') => {
    const email = `m${++n}@revoke.test`;
    const res = await addMember(cp.h, cp.token, cp.tenantId, { email, role, password: PASSWORD });
    expect(res.status).toBe(201);
    return { userId: res.body.userId as string, email, token: await login(cp.h, email) };
  };
  /** Roles of the server's sockets of one user. */
  const serverRoles = async (userId: string) =>
    (await cp.h.app.get(RealtimeServer).server.fetchSockets())
      .filter((s) => s.data.principal.kind === 'user' && s.data.principal.userId === userId)
      .map((s) => s.data.role);

  beforeAll(async () => {
    cp = await startControlPlane();
  });

  afterAll(async () => {
    for (const c of clients) c.rt.close();
    await cp?.close();
  });

  it("a removed member's open socket is disconnected within 2 s and its reconnect is refused", async () => {
    const m = await member('operator');
    const c = open(cp.url, cp.tenantId, m.token);
    await c.connected();
    await sleep(100); // the room joins reach the adapter
    const removed = await cp.h.call('DELETE', `/api/v1/tenants/${cp.tenantId}/members/${m.userId}`, {
      token: cp.token,
    });
    expect(removed.status).toBe(204);
    const t0 = Date.now();
    await until(() => c.disconnects.length > 0, 2000, 'the socket to be disconnected');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(c.disconnects[0]).toBe('io server disconnect');
    // The client reconnects on its own, and the handshake no longer lets it in.
    expect(await c.refused()).toMatchObject({ message: 'tenant not found', code: 'not_found' });
    expect(c.rt.socket.connected).toBe(false);
  });

  it("a revoked API key's socket is disconnected and refused", async () => {
    const created = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/api-keys`, {
      token: cp.token,
      body: { name: 'wallboard', role: 'viewer' },
    });
    expect(created.status).toBe(201);
    const c = open(cp.url, cp.tenantId, created.body.key as string);
    await c.connected();
    await sleep(100);
    const revoked = await cp.h.call('DELETE', `/api/v1/tenants/${cp.tenantId}/api-keys/${created.body.id}`, {
      token: cp.token,
    });
    expect(revoked.status).toBe(204);
    await until(() => c.disconnects.length > 0, 2000, 'the key socket to be disconnected');
    expect(await c.refused()).toMatchObject({ message: 'API key was revoked' });
  });

  it('a role change from operator to viewer reconnects the socket as viewer', async () => {
    const m = await member('operator');
    const c = open(cp.url, cp.tenantId, m.token);
    await c.connected();
    await sleep(100);
    expect(await serverRoles(m.userId)).toEqual(['operator']);
    const changed = await cp.h.call('PATCH', `/api/v1/tenants/${cp.tenantId}/members/${m.userId}`, {
      token: cp.token,
      body: { role: 'viewer' },
    });
    expect(changed.status).toBe(200);
    await until(() => c.disconnects.length > 0, 2000, 'the socket to be disconnected');
    await until(() => c.rt.socket.connected, 5000, 'the reconnect');
    expect(c.errors).toEqual([]);
    expect(await serverRoles(m.userId)).toEqual(['viewer']);
  });

  it('a password change ends the sockets of every session; a sign-out only those of its session', async () => {
    const m = await member('viewer');
    const otherSession = await login(cp.h, m.email);
    const a = open(cp.url, cp.tenantId, m.token);
    const b = open(cp.url, cp.tenantId, otherSession);
    await Promise.all([a.connected(), b.connected()]);
    await sleep(100);
    expect((await cp.h.call('POST', '/api/v1/auth/logout', { token: m.token })).status).toBe(204);
    expect(await a.refused()).toMatchObject({ message: 'session ended; sign in again' });
    expect(b.disconnects).toEqual([]);
    expect(b.rt.socket.connected).toBe(true);
    const changed = await cp.h.call('POST', '/api/v1/me/password', {
      token: otherSession,
      body: { currentPassword: PASSWORD, newPassword: `${PASSWORD}-new` },
    });
    expect(changed.status).toBe(204);
    await until(() => b.disconnects.length > 0, 2000, 'the other session socket to be disconnected');
    expect(await b.refused()).toMatchObject({ message: 'session ended; sign in again' });
  });

  it('a refresh token used twice ends its session, and that session loses its sockets', async () => {
    const m = await member('viewer');
    const signedIn = await cp.h.call('POST', '/api/v1/auth/login', { body: { email: m.email, password: PASSWORD } });
    expect(signedIn.status).toBe(200);
    const c = open(cp.url, cp.tenantId, signedIn.body.accessToken as string);
    const other = open(cp.url, cp.tenantId, m.token); // another session of the same user
    await Promise.all([c.connected(), other.connected()]);
    await sleep(100);
    const refreshToken = signedIn.body.refreshToken as string;
    expect((await cp.h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken } })).status).toBe(200);
    const replayed = await cp.h.call('POST', '/api/v1/auth/refresh', { body: { refreshToken } });
    expect(replayed.status).toBe(401);
    await until(() => c.disconnects.length > 0, 2000, 'the socket of the reused session to be disconnected');
    expect(await c.refused()).toMatchObject({ message: 'session ended; sign in again' });
    expect(other.disconnects).toEqual([]);
  });

  it(`refuses the ${MAX_SUBSCRIPTIONS_PER_SOCKET + 1}st site-stream subscription of one socket`, async () => {
    expect(MAX_SUBSCRIPTIONS_PER_SOCKET).toBe(20);
    const sites: string[] = [];
    for (let i = 0; i < 7; i++) {
      const s = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/sites`, {
        token: cp.token,
        body: { name: `cap-${i}` },
      });
      expect(s.status).toBe(201);
      sites.push(s.body.id as string);
    }
    const c = open(cp.url, cp.tenantId, cp.token);
    await c.connected();
    const wanted = sites.flatMap((id) => (['telemetry', 'traffic', 'logs'] as const).map((k) => [id, k] as const));
    for (const [id, k] of wanted.slice(0, 20)) await c.rt.subscribe(id, k);
    // Subscribing again to one it holds is not a new subscription.
    await c.rt.subscribe(wanted[0]![0], wanted[0]![1]);
    const [id21, k21] = wanted[20]!;
    await expect(c.rt.subscribe(id21, k21)).rejects.toThrow(/at most 20 site streams per connection/);
    // After an unsubscribe there is room again.
    await c.rt.unsubscribe(wanted[0]![0], wanted[0]![1]);
    await c.rt.subscribe(id21, k21);
  });
});
