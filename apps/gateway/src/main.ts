import 'reflect-metadata';
import { loadGatewayConfig, secretNames } from '@backplane/config';
import {
  createHttpApp,
  createLogger,
  createMetricsRegistry,
  createRedis,
  redisCheck,
  runMain,
} from '@backplane/observability';
import { GatewayModule } from './gateway.module';

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger({ app: 'gateway', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('gateway');
  const app = await createHttpApp(GatewayModule.register({ checks: [redisCheck(redis)], registry }), { logger });
  const close = app.close.bind(app);
  app.close = async () => {
    await close();
    redis.disconnect();
  };
  await app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
  logger.info(
    { url: `http://${config.GATEWAY_HOST}:${config.GATEWAY_PORT}`, region: config.GATEWAY_REGION },
    'gateway listening',
  );
}

runMain('gateway', main);
