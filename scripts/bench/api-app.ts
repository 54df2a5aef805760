/**
 * One real control plane for a benchmark: a scratch migrated database, Redis under a
 * random key prefix, the api built as in production. `close()` removes all of it.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { loadApiConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { createDataSource, Database } from '@backplane/db';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { prepareScratchDatabase } from '@backplane/testing';
import { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import { createApiApp } from '../../apps/api/src/app';

export interface BenchApi {
  readonly app: Awaited<ReturnType<typeof createApiApp>>['app'];
  readonly config: ReturnType<typeof loadApiConfig>;
  /** Owner connection (seeding only). */
  readonly ds: DataSource;
  readonly db: Database;
  readonly redis: Redis;
  readonly prefix: string;
  close(): Promise<void>;
}

/** `env` adds to (or overrides) the api settings; `quiet` drops the api's log lines. */
export async function startBenchApi(env: Record<string, string>, options: { quiet?: boolean } = {}): Promise<BenchApi> {
  const { tdb, redisUrl } = await prepareScratchDatabase();
  const config = loadApiConfig({
    DATABASE_URL: tdb.url,
    REDIS_URL: redisUrl,
    JWT_SIGNING_KEY: randomBytes(48).toString('base64url'),
    ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
    LOG_LEVEL: 'warn',
    ...env,
  });
  const ds = createDataSource({ url: tdb.url, poolSize: config.DATABASE_POOL_SIZE });
  await ds.initialize();
  const redis = new Redis(redisUrl);
  const prefix = `bpbench:${randomBytes(4).toString('hex')}:`;
  const db = new Database(ds);
  const { app } = await createApiApp({
    config,
    secrets: { jwtSigningKey: config.JWT_SIGNING_KEY! },
    keyring: new Keyring([{ id: 'bench', key: Buffer.from(config.ENCRYPTION_KEYS!.split(':')[1]!, 'base64') }]),
    db,
    redis,
    logger: createLogger({
      app: 'api-bench',
      level: config.LOG_LEVEL,
      ...(options.quiet ? { destination: new Writable({ write: (_c, _e, cb) => cb() }) } : {}),
    }),
    registry: createMetricsRegistry('api'),
    checks: [],
    redisPrefix: prefix,
  });
  return {
    app,
    config,
    ds,
    db,
    redis,
    prefix,
    async close() {
      await app.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await ds.destroy();
      await tdb.drop();
    },
  };
}
