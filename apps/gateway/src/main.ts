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
import { canIdentify, startGateway } from './gateway';
import { GatewayModule } from './gateway.module';

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger({ app: 'gateway', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('gateway');
  if (!canIdentify(config)) {
    // `npm start` on a fresh machine: no region, no enrollment yet. Serve health and say how.
    logger.warn(
      '*** GATEWAY NOT ENROLLED: openvpn is not started and no tunnel is accepted. Create a region and an enrollment token (POST /api/v1/regions/{id}/enrollment-tokens), then restart with GATEWAY_ENROLLMENT_TOKEN=<token> ***',
    );
    const app = await createHttpApp(GatewayModule.register({ checks: [redisCheck(redis)], registry }), {
      logger,
      requestLogLevel: config.LOG_REQUEST_LEVEL,
    });
    const close = app.close.bind(app);
    app.close = async () => {
      await close();
      redis.disconnect();
    };
    await app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
    logger.info({ url: `http://${config.GATEWAY_HOST}:${config.GATEWAY_PORT}`, enrolled: false }, 'gateway listening');
    return;
  }
  const gw = await startGateway({ config, logger, redis, registry, checks: [redisCheck(redis)] });
  const close = gw.app.close.bind(gw.app);
  gw.app.close = async () => {
    await close();
    redis.disconnect();
  };
  // SIGTERM/SIGINT: streams ended, calls drained (5 s), connections, pool, openvpn, Redis; exit 0
  gw.exitOnSignals(() => gw.app.close());
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
