import { secretNames, type GatewayConfig } from '@backplane/config';
import {
  createHttpApp,
  createLogger,
  createMetricsRegistry,
  createRedis,
  redisCheck,
  type AppLifecycle,
} from '@backplane/observability';
import { canIdentify, startGateway, type Gateway } from './gateway';
import { GatewayModule } from './gateway.module';

/**
 * The gateway's composition root. Enrolled (identity file, credential or enrollment token):
 * the whole gateway (startGateway); on a fresh machine without any: health and metrics
 * only, with a loud hint how to enroll.
 */
export async function composeGateway(config: GatewayConfig): Promise<AppLifecycle> {
  const logger = createLogger({ app: 'gateway', level: config.LOG_LEVEL, secretKeys: secretNames() });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const registry = createMetricsRegistry('gateway');
  const url = `http://${config.GATEWAY_HOST}:${config.GATEWAY_PORT}`;

  if (!canIdentify(config)) {
    const app = await createHttpApp(GatewayModule.register({ checks: [redisCheck(redis)], registry }), { logger });
    return {
      logger,
      async start() {
        // `npm start` on a fresh machine: no region, no enrollment yet. Serve health and say how.
        logger.warn(
          '*** GATEWAY NOT ENROLLED: openvpn is not started and no tunnel is accepted. Create a region and an enrollment token (POST /api/v1/regions/{id}/enrollment-tokens), then restart with GATEWAY_ENROLLMENT_TOKEN=<token> ***',
        );
        await app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
        logger.info({ url, enrolled: false }, 'gateway listening');
      },
      drain: () => Promise.resolve(),
      async stop() {
        await app.close();
        redis.disconnect();
      },
    };
  }

  let gw: Gateway | undefined;
  // `systemctl reload` / `kill -HUP <gateway>`: an operator's deliberate openvpn restart (drained, logged, rate-limited)
  const onHup = (): void => {
    if (!gw) return;
    logger.warn('SIGHUP: an operator asks for a deliberate openvpn restart');
    gw.runtime
      .restart('operator request (SIGHUP)')
      .catch((err: unknown) => logger.warn({ err }, 'openvpn restart failed'));
  };
  return {
    logger,
    // relayed calls get 5 s, then openvpn and the rest stop
    stopLimitMs: 9000,
    async start() {
      gw = await startGateway({ config, logger, redis, registry, checks: [redisCheck(redis)] });
      await gw.app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
      process.on('SIGHUP', onHup);
      logger.info(
        {
          url,
          region: config.GATEWAY_REGION,
          gatewayId: gw.identity.gatewayId,
          openvpn: gw.runtime.mode,
          openvpnPort: config.GATEWAY_OPENVPN_PORT,
        },
        'gateway listening',
      );
    },
    // SIGTERM/SIGINT: streams ended, calls drained (5 s), then connections, pool, openvpn, Redis; exit 0
    drain: async () => gw?.drain(),
    async stop() {
      process.off('SIGHUP', onHup);
      await gw?.close();
      redis.disconnect();
    },
  };
}
