/**
 * The worker's job schedulers (apps/worker/src/schedules): ticks run on one worker at a
 * time, and a Redis that lost them (restart without persistence, flush) gets them back from
 * the reconciler of any running worker (issue 15, finding 5), without a worker restart.
 */
import { randomBytes } from 'node:crypto';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Schedules, type Schedule } from '../../apps/worker/src/schedules';

const prefix = `bpt:${randomBytes(4).toString('hex')}:`;
const redis = new Redis(testSettings().redisUrl);
const logger = createLogger({ app: 'schedules-test', level: 'warn' });
const queue = { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${prefix}bull` };
const running: Schedules[] = [];

afterAll(async () => {
  for (const s of running) await s.stop();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

describe('worker schedules', () => {
  it('tick once per occurrence across two workers; re-created by the reconciler after Redis lost them', async () => {
    const ticks: number[] = [];
    const defs = (worker: string): Schedule[] => [
      {
        name: 'every-second',
        repeat: { everySeconds: 1 },
        run: (at) => {
          ticks.push(at);
          return Promise.resolve(worker);
        },
      },
      { name: 'disabled', repeat: 'off', run: () => Promise.resolve() },
    ];
    for (const w of ['a', 'b']) {
      const s = new Schedules(defs(w), { queue, logger, reconcileEveryMs: 500 });
      await s.start();
      running.push(s);
    }
    expect(await running[0]!.installed()).toEqual(['every-second']);
    await until(() => ticks.length >= 3, 10_000, 'three ticks');
    // each planned occurrence ran once, though two workers consume the queue
    expect(new Set(ticks).size).toBe(ticks.length);

    // Redis loses everything under the prefix (restart without persistence)
    const keys = await redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    await redis.del(...keys);
    expect(await running[0]!.installed()).toEqual([]);
    const before = ticks.length;
    await until(async () => (await running[0]!.installed()).length === 1, 5000, 'scheduler re-created');
    await until(() => ticks.length >= before + 2, 10_000, 'ticking again');
  }, 30_000);
});
