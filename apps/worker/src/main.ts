import 'reflect-metadata';
import { loadTunnelVerifierKey, loadWorkerConfig, secretNames, secretsFor } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { appLoginUrl, Database, openAppDataSource, pingDatabase } from '@backplane/db';
import { connectionFromUrl } from '@backplane/jobs';
import { RealtimePublisher } from '@backplane/realtime';
import {
  createHttpApp,
  createLogger,
  createMetricsRegistry,
  createRedis,
  postgresCheck,
  redisCheck,
  runMain,
} from '@backplane/observability';
import { RelayChannel } from './jobs/channel';
import { JobRunner } from './jobs/runner';
import { BackupScheduler } from './jobs/scheduled';
import { WorkerModule } from './worker.module';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger({ app: 'worker', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const secrets = secretsFor(config);
  logger.info({ secretsFile: secrets.file, source: secrets.source }, 'secrets loaded');
  // The app login (not a superuser, owns nothing), never the table owner: ADR 0044.
  const ds = await openAppDataSource({
    url: appLoginUrl(config.DATABASE_URL, config.DATABASE_APP_URL),
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: 'backplane-worker',
  });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('worker');
  const db = new Database(ds);
  // Shared with the api and the gateways (queue, locks, tunnel registry, realtime events).
  const prefix = config.REDIS_PREFIX;
  const queue = { connection: connectionFromUrl(config.REDIS_URL), prefix: `${prefix}bull` };
  const events = new RealtimePublisher({ redis, prefix });
  const channel = new RelayChannel(redis, prefix);
  const runner = new JobRunner(
    {
      db,
      keyring: new Keyring(secrets.encryptionKeys),
      channel,
      events,
      logger: logger.child({ component: 'jobs' }),
      verifierKey: loadTunnelVerifierKey(config.TUNNEL_VERIFIER_KEY, config.DATA_DIR),
      controllerUrl: (config.CONTROLLER_PUBLIC_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, ''),
      pollInterval: config.POLL_INTERVAL,
    },
    { queue, redis, lockPrefix: prefix, concurrency: config.WORKER_CONCURRENCY },
  );
  runner.start();
  const backups = new BackupScheduler(db, queue, config.BACKUP_CRON, logger.child({ component: 'backups' }), events);
  await backups.start();
  const app = await createHttpApp(
    WorkerModule.register({ checks: [postgresCheck(() => pingDatabase(ds)), redisCheck(redis)], registry }),
    { logger, requestLogLevel: config.LOG_REQUEST_LEVEL },
  );
  const close = app.close.bind(app);
  app.close = async () => {
    await close();
    await runner.close();
    await channel.close();
    await backups.close();
    redis.disconnect();
    await ds.destroy();
  };
  await app.listen(config.WORKER_PORT, config.WORKER_HOST);
  logger.info(
    { url: `http://${config.WORKER_HOST}:${config.WORKER_PORT}`, concurrency: config.WORKER_CONCURRENCY },
    'worker listening',
  );
}

runMain('worker', main);
