import { randomUUID } from 'node:crypto';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { TenantContext } from '../../apps/api/src/common/request';
import { MAX_STREAM_LINE, SiteStreams, type StreamRelay } from '../../apps/api/src/realtime/site-streams';
import { until } from './realtime-helpers';

const redis = new Redis(testSettings().redisUrl);
afterAll(() => redis.quit());

/**
 * The api reads each upstream site stream as NDJSON from the gateway relay. A row without an
 * end (a broken or hostile gateway/router) must not grow the api's buffer without bound:
 * past the cap the stream ends with `stream.error` for the subscribers.
 */
describe('site stream row length cap', () => {
  it('ends a logs stream with stream.error when a row exceeds 1 MiB, after delivering the rows before it', async () => {
    expect(MAX_STREAM_LINE).toBe(1024 * 1024);
    const siteId = randomUUID();
    let cancelled = false;
    let pushed = 0;
    const relay: StreamRelay = {
      call: () => Promise.resolve({ rows: [] }),
      stream: () => {
        const enc = new TextEncoder();
        const chunk = enc.encode('x'.repeat(64 * 1024)); // no newline, ever
        let first = true;
        return Promise.resolve(
          new ReadableStream<Uint8Array>({
            pull(c) {
              if (first) {
                first = false;
                c.enqueue(
                  enc.encode(`${JSON.stringify({ time: '10:00:00', topics: 'system', message: 'hello' })}\n{"time":"`),
                );
                return;
              }
              if (pushed++ > 64) return c.close(); // 4 MiB: without the cap the stream ends on its own
              c.enqueue(chunk);
            },
            cancel() {
              cancelled = true;
            },
          }),
        );
      },
    };
    const emitted: { event: string; args: unknown[] }[] = [];
    const streams = new SiteStreams({
      redis,
      prefix: `t${randomUUID()}:`,
      relay,
      emit: (_site, _stream, event, ...args) => emitted.push({ event, args }),
      logger: createLogger({ app: 'line-cap-test', level: 'silent' }),
      tickMs: 50,
      retryMs: 60_000,
    });
    try {
      streams.add('a', siteId, 'logs', {} as TenantContext);
      const error = await until(() => emitted.find((e) => e.event === 'stream.error'), 5000, 'stream.error');
      expect(error.args[0]).toMatchObject({
        siteId,
        stream: 'logs',
        message: expect.stringMatching(/row longer than 1048576 characters/) as unknown,
      });
      // The row before the long one was delivered; the long one never was.
      const logs = emitted.filter((e) => e.event === 'logs').flatMap((e) => (e.args[0] as { lines: unknown[] }).lines);
      expect(logs).toEqual([{ time: '10:00:00', topics: 'system', message: 'hello' }]);
      // Stopped reading soon after the cap (17 chunks of 64 KiB), and cancelled the upstream.
      expect(pushed).toBeLessThan(20);
      expect(cancelled).toBe(true);
      expect(streams.running).toBe(0);
    } finally {
      await streams.close();
    }
  });
});
