import 'reflect-metadata';
import { loadGatewayConfig, secretNames } from '@backplane/config';
import { createLogger, createMetricsRegistry, createRedis, redisCheck, runMain } from '@backplane/observability';
import { startGateway } from './gateway';

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger({ app: 'gateway', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('gateway');
  const gw = await startGateway({ config, logger, redis, registry, checks: [redisCheck(redis)] });
  const close = gw.app.close.bind(gw.app);
  gw.app.close = async () => {
    await close();
    redis.disconnect();
  };
  await gw.app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
  logger.info(
    {
      url: `http://${config.GATEWAY_HOST}:${config.GATEWAY_PORT}`,
      region: config.GATEWAY_REGION,
      gatewayId: gw.identity.gatewayId,
      openvpn: gw.runtime.mode,
      openvpnPort: config.GATEWAY_OPENVPN_PORT,
    },
    'gateway listening',
  );
}

runMain('gateway', main);
