import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { testSettings } from '@backplane/testing';
import { Throttle } from './throttle';

const redis = new Redis(testSettings().redisUrl);
afterAll(() => redis.quit());

describe('Throttle (gates of one event-loop turn in one pipeline, ADR 0114)', () => {
  it('30 gates issued together leave in one pipeline and each gets its own count and reads', async () => {
    const prefix = `t${randomUUID()}:`;
    const throttle = new Throttle(redis, prefix);
    await redis.set(`${prefix}epoch`, '7');
    const pipeline = vi.spyOn(redis, 'pipeline');
    try {
      const gates = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          throttle.hitAndPeek(
            { kind: 'api', subject: i < 20 ? 'same key' : `other ${i}`, windowSeconds: 60 },
            { kind: 'authfail-ip', subject: '127.0.0.1' },
            [`${prefix}epoch`, `${prefix}absent`],
          ),
        ),
      );
      expect(pipeline).toHaveBeenCalledTimes(1);
      // The 20 hits on one counter are counted 1…20 (each script atomic, in order), the others 1.
      expect(gates.slice(0, 20).map((g) => g.hit.count)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(gates.slice(20).every((g) => g.hit.count === 1)).toBe(true);
      expect(gates.every((g) => g.hit.ttl > 0 && g.hit.ttl <= 60)).toBe(true);
      expect(gates.every((g) => g.peek.count === 0 && g.reads[0] === 7 && g.reads[1] === 0)).toBe(true);
      // A later turn is a new batch; one call alone goes without a pipeline.
      expect((await throttle.hit('api', 'same key', 60)).count).toBe(21);
      expect(pipeline).toHaveBeenCalledTimes(1);
    } finally {
      pipeline.mockRestore();
    }
  });

  it('runs the script by EVAL where Redis does not know it (NOSCRIPT), in a batch and alone', async () => {
    const noScript = new Error('NOSCRIPT No matching script. Please use EVAL.');
    let evals = 0;
    const fake = {
      evalsha: () => Promise.reject(noScript),
      eval: () => Promise.resolve([++evals, 60, 0, 1]),
      pipeline() {
        let n = 0;
        const p = {
          evalsha: () => (n++, p),
          exec: () => Promise.resolve(Array.from({ length: n }, () => [noScript, null])),
        };
        return p;
      },
    };
    const throttle = new Throttle(fake as unknown as Redis, 'x:');
    const both = await Promise.all([throttle.hit('a', 'b', 60), throttle.hit('a', 'c', 60)]);
    expect(both.map((h) => h.count).sort()).toEqual([1, 2]);
    expect((await throttle.hit('a', 'd', 60)).count).toBe(3);
  });

  it('a failed pipeline fails each of its calls', async () => {
    const down = new Error('Connection is closed.');
    const fake = {
      pipeline() {
        const p = { evalsha: () => p, exec: () => Promise.reject(down) };
        return p;
      },
    };
    const throttle = new Throttle(fake as unknown as Redis, 'x:');
    const calls = [throttle.hit('a', 'b', 60), throttle.hit('a', 'c', 60)];
    for (const c of calls) await expect(c).rejects.toBe(down);
  });
});
