import 'reflect-metadata';
import { loadWorkerConfig, secretNames, secretsFor } from '@backplane/config';
import { createDataSource } from '@backplane/db';
import {
  createHttpApp,
  createLogger,
  createMetricsRegistry,
  createRedis,
  postgresCheck,
  redisCheck,
  runMain,
} from '@backplane/observability';
import { WorkerModule } from './worker.module';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger({ app: 'worker', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const secrets = secretsFor(config);
  logger.info({ secretsFile: secrets.file, source: secrets.source }, 'secrets loaded');
  const db = createDataSource({
    url: config.DATABASE_URL,
    poolSize: config.DATABASE_POOL_SIZE,
    applicationName: 'backplane-worker',
  });
  await db.initialize();
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('worker');
  const app = await createHttpApp(WorkerModule.register({ checks: [postgresCheck(db), redisCheck(redis)], registry }), {
    logger,
  });
  const close = app.close.bind(app);
  app.close = async () => {
    await close();
    redis.disconnect();
    await db.destroy();
  };
  await app.listen(config.WORKER_PORT, config.WORKER_HOST);
  logger.info(
    { url: `http://${config.WORKER_HOST}:${config.WORKER_PORT}`, concurrency: config.WORKER_CONCURRENCY },
    'worker listening',
  );
}

runMain('worker', main);
