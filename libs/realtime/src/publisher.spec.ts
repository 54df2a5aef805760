import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createAdapter } from '@socket.io/redis-adapter';
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { io as connectClient } from 'socket.io-client';
import type { TenantEvent } from '@backplane/contracts';
import { testSettings } from '@backplane/testing';
import { classifySeq, RealtimePublisher, replaySince } from './publisher';

const redis = new Redis(testSettings().redisUrl);
afterAll(() => redis.quit());

describe('RealtimePublisher', () => {
  it('numbers each tenant’s events 1, 2, 3… even from concurrent publishers', async () => {
    const prefix = `t${randomUUID()}:`;
    const a = new RealtimePublisher({ redis, prefix });
    const b = new RealtimePublisher({ redis, prefix });
    const tenant = randomUUID();
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 ? a : b).publish(tenant, { type: 'site.status', data: { siteId: `s${i}`, online: true } }),
      ),
    );
    const replay = await replaySince(redis, a.keys, tenant, 0);
    expect(replay.kind).toBe('events');
    const seqs = replay.kind === 'events' ? replay.events.map((e) => e.seq) : [];
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    // Another tenant starts at 1 on its own.
    await a.publish(randomUUID(), { type: 'site.changed', data: { siteId: 'x', change: 'created' } });
    expect((await replaySince(redis, a.keys, tenant, 48)).kind).toBe('events');
  });

  it('replays what a client missed, and asks for a resync when the backlog no longer reaches back', async () => {
    const prefix = `t${randomUUID()}:`;
    const rt = new RealtimePublisher({ redis, prefix, backlog: 10 });
    const tenant = randomUUID();
    for (let i = 1; i <= 25; i++) {
      await rt.publish(tenant, { type: 'site.status', data: { siteId: `s${i}`, online: i % 2 === 0 } });
    }
    const recent = await replaySince(redis, rt.keys, tenant, 20);
    expect(recent).toMatchObject({ kind: 'events' });
    expect(recent.kind === 'events' && recent.events.map((e) => e.data)).toEqual(
      [21, 22, 23, 24, 25].map((i) => ({ siteId: `s${i}`, online: i % 2 === 0 })),
    );
    expect(await replaySince(redis, rt.keys, tenant, 15)).toMatchObject({ kind: 'events' });
    expect(await replaySince(redis, rt.keys, tenant, 14)).toEqual({ kind: 'resync', seq: 25 });
    expect(await replaySince(redis, rt.keys, tenant, 25)).toEqual({ kind: 'events', events: [] });
  });

  it('asks a client that is ahead of the sequence (Redis lost its keys) to resync instead of replaying nothing', async () => {
    const prefix = `t${randomUUID()}:`;
    const rt = new RealtimePublisher({ redis, prefix });
    const tenant = randomUUID();
    for (let i = 1; i <= 5; i++)
      await rt.publish(tenant, { type: 'site.changed', data: { siteId: `s${i}`, change: 'updated' } });
    // Redis restarted without persistence (or failed over to a stale replica): the sequence starts again.
    await redis.del(rt.keys.seq(tenant), rt.keys.backlog(tenant));
    await rt.publish(tenant, { type: 'site.changed', data: { siteId: 'new', change: 'created' } });
    // A client at 5 would take the new events 1..5 for duplicates and drop them: it must reload.
    expect(await replaySince(redis, rt.keys, tenant, 5)).toEqual({ kind: 'resync', seq: 1 });
    expect(await replaySince(redis, rt.keys, tenant, 1)).toEqual({ kind: 'events', events: [] });
    await redis.del(rt.keys.seq(tenant), rt.keys.backlog(tenant));
    expect(await replaySince(redis, rt.keys, tenant, 3)).toEqual({ kind: 'resync', seq: 0 });
  });

  it('delivers to sockets in the tenant room through the Redis adapter, and not to another tenant', async () => {
    const prefix = `t${randomUUID()}:`;
    const rt = new RealtimePublisher({ redis, prefix });
    const sub = redis.duplicate();
    const http = createServer();
    const server = new Server(http, { adapter: createAdapter(redis, sub, { key: rt.keys.channel }) });
    server.on('connection', (s) => void s.join(`tenant:${String(s.handshake.auth['tenantId'])}`));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    const [t1, t2] = [randomUUID(), randomUUID()];
    const c1 = connectClient(`http://127.0.0.1:${port}`, { auth: { tenantId: t1 }, transports: ['websocket'] });
    const c2 = connectClient(`http://127.0.0.1:${port}`, { auth: { tenantId: t2 }, transports: ['websocket'] });
    try {
      await Promise.all([c1, c2].map((c) => new Promise((r) => c.once('connect', () => r(null)))));
      const got1: TenantEvent[] = [];
      const got2: TenantEvent[] = [];
      c1.on('event', (e: TenantEvent) => got1.push(e));
      c2.on('event', (e: TenantEvent) => got2.push(e));
      await new Promise((r) => setTimeout(r, 100)); // the join reaches the adapter
      await rt.publish(t1, { type: 'site.status', data: { siteId: 'a', online: false, reason: 'gateway-lost' } });
      await expect.poll(() => got1.length).toBe(1);
      expect(got1[0]).toMatchObject({
        seq: 1,
        tenantId: t1,
        type: 'site.status',
        data: { siteId: 'a', online: false },
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(got2).toEqual([]);
    } finally {
      c1.close();
      c2.close();
      await server.close();
      sub.disconnect();
    }
  });

  it('tells a client to apply, ignore or fill a gap', () => {
    expect(classifySeq(4, 5)).toBe('apply');
    expect(classifySeq(5, 5)).toBe('duplicate');
    expect(classifySeq(5, 3)).toBe('duplicate');
    expect(classifySeq(5, 7)).toBe('gap');
  });
});
