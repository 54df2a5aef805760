import type { ReadinessCheck } from './ops';

/** `ping` is `() => pingDatabase(dataSource)` from @backplane/db (only libs/db runs SQL). */
export function postgresCheck(ping: () => Promise<void>): ReadinessCheck {
  return { name: 'postgres', check: ping };
}

export function redisCheck(redis: { ping(): Promise<string> }): ReadinessCheck {
  return {
    name: 'redis',
    check: async () => {
      const answer = await redis.ping();
      if (answer !== 'PONG') throw new Error(`unexpected PING answer ${answer}`);
    },
  };
}
