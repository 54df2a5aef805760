import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import { RealtimePublisher } from '@backplane/realtime';
import { REALTIME_PATH, type SiteStatusData } from '@backplane/contracts';
import { io as connectRaw } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../../apps/api/src/auth/tokens';
import { RealtimeServer } from '../../apps/api/src/realtime/realtime.server';
import { createTenant, login, PASSWORD } from '../api/harness';
import { startControlPlane, type ControlPlane } from '../gateway/control-plane';
import { client, secondReplica, sleep, until, type TestClient } from './realtime-helpers';

/**
 * Tenant events over socket.io against the real api (listening on loopback), PostgreSQL and
 * Redis: handshake authentication, tenant isolation, catch-up after a reconnect, resync,
 * and delivery across two api replicas sharing Redis.
 */
describe('realtime tenant events', () => {
  let cp: ControlPlane;
  let pub: RealtimePublisher;
  let tenantB: string;
  let tokenB: string;
  const clients: TestClient[] = [];

  const open = (...args: Parameters<typeof client>) => {
    const c = client(...args);
    clients.push(c);
    return c;
  };
  const status = (siteId: string, online: boolean, reason?: string): SiteStatusData => ({
    siteId,
    online,
    ...(reason ? { reason } : {}),
  });

  beforeAll(async () => {
    cp = await startControlPlane();
    pub = new RealtimePublisher({ redis: cp.h.redis, prefix: cp.h.prefix });
    const tb = await createTenant(cp.h, cp.token, {
      slug: 'msp-b',
      name: 'MSP B',
      owner: { email: 'owner@msp-b.test', password: PASSWORD },
    });
    expect(tb.status).toBe(201);
    tenantB = tb.body.id as string;
    tokenB = await login(cp.h, 'owner@msp-b.test');
  });

  afterAll(async () => {
    for (const c of clients) c.rt.close();
    await cp?.close();
  });

  it('refuses a missing, forged or expired token and a tenant the caller is not a member of', async () => {
    expect((await open(cp.url, cp.tenantId, '').refused()).message).toMatch(/authentication required/);
    const forged = await open(cp.url, cp.tenantId, 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl').refused();
    expect(forged).toMatchObject({ message: 'access token is not valid', code: 'unauthorized' });
    const claims = decodeJwt(cp.token);
    const expired = await new TokenService(cp.h.signingKey, -60).signAccess({
      userId: claims.sub!,
      sessionId: claims['sid'] as string,
    });
    expect(await open(cp.url, cp.tenantId, expired).refused()).toMatchObject({ message: 'access token expired' });
    // B's owner asking for A's tenant: not found, as on REST.
    expect(await open(cp.url, cp.tenantId, tokenB).refused()).toMatchObject({
      message: 'tenant not found',
      code: 'not_found',
    });
    expect(await open(cp.url, 'not-a-uuid', cp.token).refused()).toMatchObject({ code: 'unauthorized' });
  });

  it('takes API keys like REST does: a viewer key connects, a revoked one is refused', async () => {
    const created = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/api-keys`, {
      token: cp.token,
      body: { name: 'dashboard', role: 'viewer' },
    });
    expect(created.status).toBe(201);
    const c = open(cp.url, cp.tenantId, created.body.key as string);
    await c.connected();
    expect(c.errors).toEqual([]);
    c.rt.close();
    const revoked = await cp.h.call('DELETE', `/api/v1/tenants/${cp.tenantId}/api-keys/${created.body.id}`, {
      token: cp.token,
    });
    expect(revoked.status).toBe(204);
    expect(await open(cp.url, cp.tenantId, created.body.key as string).refused()).toMatchObject({
      message: 'API key was revoked',
    });
    // A key of one tenant cannot open another tenant's room.
    const other = await cp.h.call('POST', `/api/v1/tenants/${tenantB}/api-keys`, {
      token: tokenB,
      body: { name: 'b', role: 'owner' },
    });
    expect(await open(cp.url, cp.tenantId, other.body.key as string).refused()).toMatchObject({
      message: 'tenant not found',
    });
  });

  it("delivers a tenant's events to its sockets and never to another tenant's", async () => {
    const a = open(cp.url, cp.tenantId, cp.token);
    const b = open(cp.url, tenantB, tokenB);
    await Promise.all([a.connected(), b.connected()]);
    await sleep(100); // the room joins reach the adapter
    const siteA = randomUUID();
    await pub.publish(cp.tenantId, { type: 'site.status', data: status(siteA, false, 'gateway-lost') });
    await pub.publish(cp.tenantId, { type: 'site.changed', data: { siteId: siteA, change: 'updated' } });
    await until(() => a.events.length === 2, 5000, 'events for A');
    expect(a.events.map((e) => [e.seq, e.type, 'siteId' in e.data ? e.data.siteId : null])).toEqual([
      [1, 'site.status', siteA],
      [2, 'site.changed', siteA],
    ]);
    await pub.publish(tenantB, { type: 'site.status', data: status('b-site', true) });
    await until(() => b.events.length === 1, 5000, 'event for B');
    await sleep(300);
    expect(b.events.map((e) => ('siteId' in e.data ? e.data.siteId : null))).toEqual(['b-site']);
    expect(a.events).toHaveLength(2);
    a.rt.close();
    b.rt.close();
  });

  it('a client that was disconnected while 3 status changes happened gets all 3, in order, once', async () => {
    const siteId = randomUUID();
    const current = Number(await cp.h.redis.get(pub.keys.seq(tenantB)));
    const c = open(cp.url, tenantB, tokenB, current);
    await c.connected();
    await sleep(100);
    await pub.publish(tenantB, { type: 'site.status', data: status(siteId, true) });
    await until(() => c.events.length === 1, 5000, 'first event');
    const before = c.rt.lastSeq;
    c.rt.socket.disconnect();
    await pub.publish(tenantB, { type: 'site.status', data: status(siteId, false, 'tunnel-down') });
    await pub.publish(tenantB, { type: 'site.status', data: status(siteId, true) });
    await pub.publish(tenantB, { type: 'site.status', data: status(siteId, false, 'gateway-lost') });
    c.rt.socket.connect();
    await until(() => c.events.length === 4, 5000, 'replayed events');
    // A live event right after the reconnect still comes once and in order.
    await pub.publish(tenantB, { type: 'site.status', data: status(siteId, true) });
    await until(() => c.events.length === 5, 5000, 'live event after replay');
    await sleep(300);
    expect(c.events.map((e) => e.seq)).toEqual([before, before + 1, before + 2, before + 3, before + 4]);
    expect(c.events.slice(1).map((e) => (e.data as SiteStatusData).reason ?? 'up')).toEqual([
      'tunnel-down',
      'up',
      'gateway-lost',
      'up',
    ]);
    expect(c.resyncs).toEqual([]);
    c.rt.close();
  });

  it('a client further behind than the backlog is told to resync with the current seq', async () => {
    const small = new RealtimePublisher({ redis: cp.h.redis, prefix: cp.h.prefix, backlog: 5 });
    const t = cp.tenantId;
    for (let i = 0; i < 12; i++) await small.publish(t, { type: 'site.status', data: status(`s${i}`, i % 2 === 0) });
    const current = Number(await cp.h.redis.get(small.keys.seq(t)));
    const far = open(cp.url, t, cp.token, current - 8);
    await until(() => far.resyncs.length === 1, 5000, 'resync');
    expect(far.resyncs).toEqual([current]);
    expect(far.events).toEqual([]);
    // After the REST reload the client continues from the seq the resync named.
    far.rt.setLastSeq(current);
    await small.publish(t, { type: 'site.status', data: status('after', true) });
    await until(() => far.events.length === 1, 5000, 'event after resync');
    expect(far.events[0]).toMatchObject({ seq: current + 1, data: { siteId: 'after' } });
    // Within the backlog: replayed, no resync.
    const near = open(cp.url, t, cp.token, current - 3);
    await until(() => near.events.length === 4, 5000, 'replay within the backlog');
    expect(near.events.map((e) => e.seq)).toEqual([current - 2, current - 1, current, current + 1]);
    expect(near.resyncs).toEqual([]);
    far.rt.close();
    near.rt.close();
  });

  it('a first connect to a tenant with history is told where to continue, not sent old events', async () => {
    const current = Number(await cp.h.redis.get(pub.keys.seq(cp.tenantId)));
    expect(current).toBeGreaterThan(0);
    const fresh = open(cp.url, cp.tenantId, cp.token);
    await until(() => fresh.resyncs.length === 1, 5000, 'resync on first connect');
    expect(fresh.resyncs).toEqual([current]);
    fresh.rt.setLastSeq(current); // after loading over REST
    await pub.publish(cp.tenantId, { type: 'site.status', data: status('next', true) });
    await until(() => fresh.events.length === 1, 5000, 'next event');
    await sleep(200);
    expect(fresh.events.map((e) => e.seq)).toEqual([current + 1]);
    fresh.rt.close();
  });

  it('an event published through one replica reaches a socket connected to another', async () => {
    const other = await secondReplica(cp.h);
    try {
      const c = open(other.url, cp.tenantId, cp.token);
      await c.connected();
      // A first connect is answered with resync: continue from there (as after a REST reload).
      await until(() => c.resyncs.length === 1, 5000, 'resync on first connect');
      const start = c.resyncs[0]!;
      c.rt.setLastSeq(start);
      await sleep(100);
      // The first replica's own publisher (what its services use), not the socket's replica.
      const viaFirst = new RealtimePublisher({ redis: cp.h.redis, prefix: cp.h.prefix });
      await viaFirst.publish(cp.tenantId, { type: 'job.progress', data: jobData() });
      await until(() => c.events.length === 1, 5000, 'event on the other replica');
      expect(c.events[0]).toMatchObject({ seq: start + 1, type: 'job.progress', tenantId: cp.tenantId });
      c.rt.close();
    } finally {
      await other.close();
    }
  });

  it('keeps no expiry or re-check timer for a handshake whose client left before it was accepted', async () => {
    const created = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/api-keys`, {
      token: cp.token,
      body: { name: 'leaver', role: 'viewer' },
    });
    expect(created.status).toBe(201);
    const server = cp.h.app.get(RealtimeServer);
    const timers = (server as unknown as { timers: Map<string, unknown> }).timers;
    const stale = () => [...timers.keys()].filter((id) => !server.server.of('/').sockets.has(id));
    // Send the CONNECT packet, then close the transport while the server is still authenticating.
    for (const token of [created.body.key as string, cp.token, created.body.key as string]) {
      const s = connectRaw(cp.url, {
        path: REALTIME_PATH,
        transports: ['websocket'],
        reconnection: false,
        auth: (cb: (data: object) => void) => {
          cb({ token, tenantId: cp.tenantId });
          s.io.engine.close();
        },
      });
    }
    await sleep(1500);
    expect(stale()).toEqual([]);
  });

  it('sees the client address behind a trusted proxy (TRUST_PROXY), as REST does, and only there', async () => {
    const behind = await secondReplica(cp.h, { TRUST_PROXY: '127.0.0.1' });
    const addressOf = (server: RealtimeServer) =>
      [...server.server.of('/').sockets.values()].map((s) => s.data.ctx.actor.sourceIp);
    try {
      const viaProxy = open(behind.url, cp.tenantId, cp.token, 0, { 'x-forwarded-for': '198.51.100.9, 203.0.113.7' });
      await viaProxy.connected();
      expect(addressOf(behind.api.app.get(RealtimeServer))).toEqual(['203.0.113.7']);
      viaProxy.rt.close();
      // Without TRUST_PROXY the header is anyone's to forge: the peer address counts.
      const direct = open(cp.url, cp.tenantId, cp.token, 0, { 'x-forwarded-for': '203.0.113.7' });
      await direct.connected();
      expect(addressOf(cp.h.app.get(RealtimeServer))).toContain('127.0.0.1');
      expect(addressOf(cp.h.app.get(RealtimeServer))).not.toContain('203.0.113.7');
      direct.rt.close();
    } finally {
      await behind.close();
    }
  });

  it('runs one replay at a time per socket: a burst of resumes is refused, not multiplied', async () => {
    const t = cp.tenantId;
    for (let i = 0; i < 20; i++) await pub.publish(t, { type: 'site.status', data: status(`burst${i}`, true) });
    const current = Number(await cp.h.redis.get(pub.keys.seq(t)));
    const s = connectRaw(cp.url, {
      path: REALTIME_PATH,
      transports: ['websocket'],
      reconnection: false,
      auth: { token: cp.token, tenantId: t, lastSeq: current },
    });
    try {
      await new Promise<void>((r) => s.once('connect', () => r()));
      let events = 0;
      s.on('event', () => events++);
      const answers = (await Promise.all(
        Array.from({ length: 10 }, () => s.timeout(5000).emitWithAck('resume', { lastSeq: current - 20 })),
      )) as { ok: boolean; data?: { replayed: number }; error?: string }[];
      const ok = answers.filter((a) => a.ok);
      expect(ok.length).toBeGreaterThanOrEqual(1);
      expect(ok.length).toBeLessThanOrEqual(2);
      expect(answers.filter((a) => !a.ok).every((a) => /already waiting/.test(a.error ?? ''))).toBe(true);
      await sleep(200);
      expect(events).toBe(ok.length * 20);
      // Once answered, the next resume is served again.
      expect(await s.timeout(5000).emitWithAck('resume', { lastSeq: current - 1 })).toEqual({
        ok: true,
        data: { replayed: 1 },
      });
    } finally {
      s.close();
    }
  });

  it('disconnects a socket when its access token expires; the client comes back with a fresh one', async () => {
    const claims = decodeJwt(cp.token);
    const short = new TokenService(cp.h.signingKey, 2);
    const session = { userId: claims.sub!, sessionId: claims['sid'] as string };
    let issued = 0;
    const c = open(cp.url, cp.tenantId, async () => {
      issued++;
      return short.signAccess(session);
    });
    await c.connected();
    const firstId = c.rt.socket.id;
    const disconnected = new Promise<string>((r) => c.rt.socket.once('disconnect', (reason) => r(reason)));
    expect(await disconnected).toBe('io server disconnect');
    await until(() => c.rt.socket.connected && c.rt.socket.id !== firstId, 8000, 'reconnected');
    expect(issued).toBeGreaterThanOrEqual(2);
    c.rt.close();
  });
});

function jobData() {
  return { jobId: randomUUID(), siteId: randomUUID(), kind: 'backup', state: 'running', step: 'export' };
}
