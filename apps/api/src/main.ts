import 'reflect-metadata';
import { loadApiConfig, secretNames, secretsFor } from '@backplane/config';
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
  runMain,
} from '@backplane/observability';
import { createApiApp } from './app';

async function main(): Promise<void> {
  const config = loadApiConfig();
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
  const db = await openAppDataSource({
    url: appLoginUrl(config.DATABASE_URL, config.DATABASE_APP_URL),
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: 'backplane-api',
  });

  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('api');
  const { app } = await createApiApp({
    config,
    secrets,
    keyring,
    db: new Database(db),
    redis,
    logger,
    registry,
    checks: [postgresCheck(() => pingDatabase(db)), redisCheck(redis)],
    redisPrefix: config.REDIS_PREFIX,
  });
  const close = app.close.bind(app);
  app.close = async () => {
    await close();
    redis.disconnect();
    await db.destroy();
  };
  await app.listen(config.API_PORT, config.API_HOST);
  logger.info({ url: `http://${config.API_HOST}:${config.API_PORT}`, docs: '/api/docs' }, 'api listening');
}

runMain('api', main);
