/**
 * A job worker process that reaches simulated routers directly on loopback (no tunnel):
 * `node dist/scripts/jobs-worker.js <config.json>`. Used by the job fault tests
 * (kill -9, Redis restart) and the fan-out benchmark. The config file names the database,
 * the Redis, the BullMQ prefix, the keys and where each site's router listens; it is
 * re-read when a site is missing (routers added after start).
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { Keyring } from '@backplane/crypto';
import { createDataSource, Database } from '@backplane/db';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { RealtimePublisher } from '@backplane/realtime';
import { Redis } from 'ioredis';
import { DirectChannel, RelayChannel, type RouterChannel } from '../apps/worker/src/jobs/channel';
import { JobRunner } from '../apps/worker/src/jobs/runner';

export interface JobsWorkerConfig {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly bullPrefix: string;
  readonly lockPrefix: string;
  /** base64 of the 32-byte data key (key id `test`). */
  readonly encryptionKey: string;
  readonly verifierKey: string;
  readonly controllerUrl: string;
  readonly concurrency: number;
  readonly lockDurationMs?: number;
  /** Per-site lock TTL (ms): how long the site of a killed worker stays busy. */
  readonly siteLockTtlMs?: number;
  /** apply-config before/after record: only the touched menus (default) or the full export. */
  readonly applyExport?: 'menu' | 'full';
  /** siteId -> API port on 127.0.0.1 (or `host:port`). */
  readonly sites: Record<string, number | string>;
  /**
   * Reach the routers through the gateways' relay instead (the production RelayChannel): the
   * tunnel registry under this prefix in the worker's Redis says which gateway holds a site.
   */
  readonly relayPrefix?: string;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: jobs-worker <config.json>');
  let config = JSON.parse(readFileSync(file, 'utf8')) as JobsWorkerConfig;
  const logger = createLogger({ app: 'jobs-worker', level: 'warn' });
  const ds = createDataSource({ url: config.databaseUrl, poolSize: Math.min(20, config.concurrency + 2) });
  await ds.initialize();
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const direct = () =>
    new DirectChannel((siteId) => {
      let where = config.sites[siteId];
      if (where === undefined) {
        config = JSON.parse(readFileSync(file, 'utf8')) as JobsWorkerConfig;
        where = config.sites[siteId];
      }
      if (where === undefined) return undefined;
      const [host, port] =
        typeof where === 'number' ? ['127.0.0.1', where] : [where.split(':')[0]!, Number(where.split(':')[1])];
      return { host, port };
    });
  const channel: RouterChannel = config.relayPrefix ? new RelayChannel(redis, config.relayPrefix) : direct();
  const runner = new JobRunner(
    {
      db: new Database(ds),
      keyring: new Keyring([{ id: 'test', key: Buffer.from(config.encryptionKey, 'base64') }]),
      channel,
      logger,
      verifierKey: Buffer.from(config.verifierKey, 'utf8'),
      controllerUrl: config.controllerUrl,
      pollInterval: 30,
      apiAllowedFrom: '127.0.0.1',
      // Tenant events under the same prefix as the locks (the api's in the tests).
      events: new RealtimePublisher({ redis, prefix: config.lockPrefix }),
      ...(config.applyExport ? { applyExport: config.applyExport } : {}),
    },
    {
      queue: { connection: connectionFromUrl(config.redisUrl), prefix: config.bullPrefix },
      redis,
      lockPrefix: config.lockPrefix,
      concurrency: config.concurrency,
      reconcileEveryMs: 2000,
      lockDurationMs: config.lockDurationMs ?? 4000,
      ...(config.siteLockTtlMs ? { siteLockTtlMs: config.siteLockTtlMs } : {}),
    },
  );
  runner.start();
  process.stdout.write(`jobs-worker ready pid=${process.pid}\n`);
  const stop = async () => {
    await runner.close();
    await channel.close?.();
    redis.disconnect();
    await ds.destroy();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err instanceof Error ? err.stack : err)}\n`);
  process.exit(1);
});
