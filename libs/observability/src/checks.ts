import type { ReadinessCheck } from './ops';

export function postgresCheck(db: { query(sql: string): Promise<unknown> }): ReadinessCheck {
  return {
    name: 'postgres',
    check: async () => {
      await db.query('SELECT 1');
    },
  };
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
