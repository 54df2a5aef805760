import { loadTunnelVerifierKey, secretNames, secretsFor, type WorkerConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { appLoginUrl, assertKeysAvailable, Database, openAppDataSource, pingDatabase } from '@backplane/db';
import { connectionFromUrl } from '@backplane/jobs';
import { RealtimePublisher } from '@backplane/realtime';
import {
  createHttpApp,
  createLogger,
  createMetricsRegistry,
  createRedis,
  postgresCheck,
  redisCheck,
  type AppLifecycle,
  type ReadinessCheck,
} from '@backplane/observability';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { workerDispatcher } from './alerts';
import { RelayChannel, type RouterChannel } from './jobs/channel';
import { JobRunner } from './jobs/runner';
import { workerSchedules, type WorkerSchedules } from './schedules';
import { WorkerModule } from './worker.module';

export interface WorkerApp extends AppLifecycle {
  readonly runner: JobRunner;
  readonly schedules: WorkerSchedules;
  readonly registry: Registry;
}

export interface WorkerOverrides {
  readonly logger?: Logger;
  /** How jobs reach routers (default: the gateways' relay). */
  readonly channel?: RouterChannel;
}

/**
 * The worker's composition root: the job runner (BullMQ `jobs` queue), the schedules
 * (BullMQ job schedulers: backups, offline sweep, region health, telemetry maintenance)
 * and an HTTP server for /healthz, /readyz and /metrics.
 */
export async function composeWorker(config: WorkerConfig, overrides: WorkerOverrides = {}): Promise<WorkerApp> {
  const logger =
    overrides.logger ?? createLogger({ app: 'worker', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const secrets = secretsFor(config);
  logger.info({ secretsFile: secrets.file, source: secrets.source }, 'secrets loaded');
  // The app login (not a superuser, owns nothing), never the table owner: ADR 0044.
  const ds = await openAppDataSource({
    url: appLoginUrl(config.DATABASE_URL, config.DATABASE_APP_URL),
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: 'backplane-worker',
  });
  // Exit 78 when stored values use a key id the keyring lacks (issue 15 finding 7, ADR 0059).
  const keyring = new Keyring(secrets.encryptionKeys);
  await assertKeysAvailable(ds, keyring).catch(async (err: unknown) => {
    await ds.destroy();
    throw err;
  });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('worker');
  const db = new Database(ds);
  // Shared with the api and the gateways (queue, locks, tunnel registry, realtime events).
  const prefix = config.REDIS_PREFIX;
  const queue = { connection: connectionFromUrl(config.REDIS_URL), prefix: `${prefix}bull` };
  const events = new RealtimePublisher({ redis, prefix });
  const channel = overrides.channel ?? new RelayChannel(redis, prefix);
  const runner = new JobRunner(
    {
      db,
      keyring,
      channel,
      events,
      logger: logger.child({ component: 'jobs' }),
      verifierKey: loadTunnelVerifierKey(config.TUNNEL_VERIFIER_KEY, config.DATA_DIR),
      controllerUrl: (config.CONTROLLER_PUBLIC_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, ''),
      pollInterval: config.POLL_INTERVAL,
    },
    { queue, redis, lockPrefix: prefix, concurrency: config.WORKER_CONCURRENCY, metrics: registry },
  );
  const schedules = workerSchedules({
    config,
    db,
    redis,
    redisPrefix: prefix,
    queue,
    logger,
    realtime: events,
    channel,
    keyring,
  });
  const notifications = workerDispatcher({
    config,
    db,
    keyring,
    logger: logger.child({ component: 'notifications' }),
    registry,
    realtime: events,
  });

  let draining = false;
  const accepting: ReadinessCheck = {
    name: 'accepting-work',
    check: () => (draining ? Promise.reject(new Error('draining')) : Promise.resolve()),
  };
  const app = await createHttpApp(
    WorkerModule.register({ checks: [postgresCheck(() => pingDatabase(ds)), redisCheck(redis), accepting], registry }),
    { logger, requestLogLevel: config.LOG_REQUEST_LEVEL },
  );
  const drainMs = config.WORKER_DRAIN_TIMEOUT * 1000;

  return {
    logger,
    runner,
    schedules,
    registry,
    stopLimitMs: drainMs + 10_000,
    async start() {
      runner.start();
      await schedules.start();
      notifications.dispatcher.start();
      await app.listen(config.WORKER_PORT, config.WORKER_HOST);
      logger.info(
        { url: `http://${config.WORKER_HOST}:${config.WORKER_PORT}`, concurrency: config.WORKER_CONCURRENCY },
        'worker listening',
      );
    },
    async drain() {
      draining = true;
      await schedules.stop();
      await notifications.dispatcher.stop();
      const finished = await runner.drain(drainMs);
      logger.info({ finished }, 'worker drained');
    },
    async stop() {
      await app.close();
      await runner.close();
      await channel.close?.();
      notifications.close();
      redis.disconnect();
      if (ds.isInitialized) await ds.destroy();
    },
  };
}
