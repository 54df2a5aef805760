import { randomUUID } from 'node:crypto';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { TenantContext } from '../common/request';
import { SiteStreams, type StreamRelay } from './site-streams';

const redis = new Redis(testSettings().redisUrl);
afterAll(() => redis.quit());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SiteStreams locks', () => {
  it('a stream that stopped late does not release the lock its successor on the same replica holds', async () => {
    const prefix = `t${randomUUID()}:`;
    const siteId = randomUUID();
    const lock = `${prefix}rt:stream:${siteId}:traffic`;
    // The first upstream stream hangs in its interface list (a slow router): stopping it
    // waits longer than the lock lives.
    let releaseFirst: () => void = () => undefined;
    let calls = 0;
    let upstreams = 0;
    const relay: StreamRelay = {
      call: () => {
        calls++;
        if (calls === 1) return new Promise((r) => (releaseFirst = () => r({ rows: [] })));
        return Promise.resolve({ rows: [{ name: 'ether1' }] });
      },
      stream: (_t, _s, _r, signal) => {
        upstreams++;
        return Promise.resolve(
          new ReadableStream<Uint8Array>({
            start(c) {
              signal.addEventListener('abort', () => c.error(new Error('aborted')));
            },
          }),
        );
      },
    };
    const streams = new SiteStreams({
      redis,
      prefix,
      relay,
      emit: () => undefined,
      logger: createLogger({ app: 'site-streams-test', level: 'silent' }),
      tickMs: 50,
      lockMs: 300,
    });
    const ctx = {} as TenantContext;
    try {
      streams.add('a', siteId, 'traffic', ctx);
      await sleep(100);
      expect(streams.running).toBe(1);
      streams.remove('a', siteId, 'traffic'); // stopping: waits for the hanging call
      await sleep(400); // the first lock expired meanwhile
      streams.add('b', siteId, 'traffic', ctx); // a new subscriber: a new entry takes the lock
      await sleep(150);
      expect(streams.running).toBe(1);
      expect(await redis.get(lock)).not.toBeNull();
      const started = upstreams;
      expect(started).toBe(1); // the successor's
      // The first stream finally ends and releases what it thinks is its lock: the successor
      // must keep its lock and its upstream stream (not lose it and start another).
      releaseFirst();
      await sleep(300);
      expect(await redis.get(lock)).not.toBeNull();
      expect(upstreams).toBe(started);
      expect(streams.running).toBe(1);
    } finally {
      releaseFirst();
      await streams.close();
    }
  });
});
