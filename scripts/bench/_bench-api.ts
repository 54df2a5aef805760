/**
 * The api child of the realtime benches (`realtime.ts`, `_realtime-connect-probe.ts`): waits
 * for its settings from the parent, starts the real api app on a free loopback port and tells
 * the parent `{ kind: 'listening', port }`. No side effects on import: each bench forks its own
 * entry point and calls this from there.
 */
import type { ChildProcess } from 'node:child_process';
import type { Worker } from 'node:worker_threads';
import type { INestApplication } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { Redis } from 'ioredis';

export interface BenchApi {
  readonly app: INestApplication;
  readonly ds: DataSource;
  readonly redis: Redis;
  readonly port: number;
}

export async function listenBenchApi(): Promise<BenchApi> {
  const [{ loadApiConfig }, { Keyring }, { createDataSource, Database }, obs, { Redis }, { createApiApp }] =
    await Promise.all([
      import('@backplane/config'),
      import('@backplane/crypto'),
      import('@backplane/db'),
      import('@backplane/observability'),
      import('ioredis'),
      import('../../apps/api/src/app'),
    ]);
  const start = await new Promise<{ env: Record<string, string>; prefix: string }>((resolve) =>
    process.once('message', (m) => resolve(m as { env: Record<string, string>; prefix: string })),
  );
  const config = loadApiConfig(start.env);
  const ds = createDataSource({ url: config.DATABASE_URL, poolSize: config.DATABASE_POOL_SIZE });
  await ds.initialize();
  const redis = new Redis(config.REDIS_URL);
  const { app } = await createApiApp({
    config,
    secrets: { jwtSigningKey: config.JWT_SIGNING_KEY! },
    keyring: new Keyring([{ id: 'bench', key: Buffer.from(config.ENCRYPTION_KEYS!.split(':')[1]!, 'base64') }]),
    db: new Database(ds),
    redis,
    logger: obs.createLogger({ app: 'api-bench', level: 'warn' }),
    registry: obs.createMetricsRegistry('api'),
    checks: [],
    redisPrefix: start.prefix,
  });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as { port: number }).port;
  process.send!({ kind: 'listening', port });
  return { app, ds, redis, port };
}

/** The next message of a worker or child that `pred` accepts. */
export function nextMessage<T>(w: Worker | ChildProcess, pred: (m: T) => boolean): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: T) => {
      if (!pred(m)) return;
      w.off('message', on);
      w.off('error', reject);
      resolve(m);
    };
    w.on('message', on);
    w.once('error', reject);
  });
}
