import { secretNames, secretsFor, type ApiConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import {
  appLoginUrl,
  createDataSource,
  Database,
  openAppDataSource,
  pingDatabase,
  runMigrationsLocked,
  verifyKeyring,
} from '@backplane/db';
import {
  createLogger,
  createMetricsRegistry,
  createRedis,
  postgresCheck,
  redisCheck,
  type AppLifecycle,
} from '@backplane/observability';
import { createApiApp } from './app';

/**
 * The api's composition root: database (migrations, keyring check), Redis and the Nest
 * application (createApiApp, also what the tests and benchmarks build). Background work
 * (sweeps, region health, telemetry maintenance, backups) runs in the worker.
 */
export async function composeApi(config: ApiConfig): Promise<AppLifecycle> {
  const logger = createLogger({ app: 'api', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const secrets = secretsFor(config);
  logger.info(
    { secretsFile: secrets.file, generated: secrets.generated, source: secrets.source },
    secrets.generated ? 'generated new secrets (back this file up)' : 'secrets loaded',
  );

  // The table owner (DATABASE_URL) only migrates and checks the keyring at start; every
  // request runs on the app login, which is not a superuser and owns nothing (ADR 0044).
  // Two connections: runMigrationsLocked holds the advisory lock on one and migrates on the other.
  const owner = createDataSource({ url: config.DATABASE_URL, poolSize: 2, applicationName: 'backplane-api-migrate' });
  await owner.initialize();
  const keyring = new Keyring(secrets.encryptionKeys);
  try {
    if (config.MIGRATIONS_RUN) {
      const applied = await runMigrationsLocked(owner);
      logger.info({ applied }, applied.length ? 'migrations applied' : 'database schema up to date');
    }
    await verifyKeyring(owner, keyring, { secretsFile: secrets.file, generatedNow: secrets.generated });
  } finally {
    await owner.destroy();
  }
  const ds = await openAppDataSource({
    url: appLoginUrl(config.DATABASE_URL, config.DATABASE_APP_URL),
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: 'backplane-api',
  });

  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const { app } = await createApiApp({
    config,
    secrets,
    keyring,
    db: new Database(ds),
    redis,
    logger,
    registry: createMetricsRegistry('api'),
    checks: [postgresCheck(() => pingDatabase(ds)), redisCheck(redis)],
    redisPrefix: config.REDIS_PREFIX,
  });
  const server = app.getHttpServer();

  return {
    logger,
    async start() {
      await app.listen(config.API_PORT, config.API_HOST);
      logger.info({ url: `http://${config.API_HOST}:${config.API_PORT}`, docs: '/api/docs' }, 'api listening');
    },
    drain() {
      // no new connections; requests in flight finish (Fastify's close waits for them)
      if (server.listening) server.close();
      server.closeIdleConnections();
      return Promise.resolve();
    },
    async stop() {
      await app.close();
      redis.disconnect();
      await ds.destroy();
    },
  };
}
