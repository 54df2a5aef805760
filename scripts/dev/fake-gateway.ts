/**
 * `npm start` without real tunnels (no root, /dev/net/tun or openvpn, or GATEWAY_OPENVPN=fake):
 * the enrolled gateway runs in this process on its fake management server, and each demo
 * router's tunnel is emulated — announced to the fake server with the user and password the
 * onboarding script configured on the router's ovpn-client, so the gateway authenticates it
 * like a real one, and the gateway reaches the router's API at its simulator's listener
 * instead of the tunnel address.
 */
import { loadGatewayConfig, secretNames, type Env } from '@backplane/config';
import { createLogger, createMetricsRegistry, createRedis, redisCheck } from '@backplane/observability';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import type { DestinationStream } from 'pino';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

export interface FakeTunnels {
  /** Emulates a router's tunnel until the gateway authorises it (or `ms` passed); true when up. */
  connect(siteId: string, endpoint: { host: string; port: number }, user: string, password: string): Promise<boolean>;
}

export interface FakeGateway extends FakeTunnels {
  readonly gateway: Gateway;
  close(): Promise<void>;
}

/** `destination`: where the gateway's log lines go (npm start: DATA_DIR/logs/gateway.log). */
export async function startFakeGateway(env: Env, destination?: DestinationStream): Promise<FakeGateway> {
  const config = loadGatewayConfig(env);
  const logger = createLogger({
    app: 'gateway',
    level: config.LOG_LEVEL,
    secretKeys: secretNames(),
    ...(destination ? { destination } : {}),
  });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const endpoints = new Map<string, { host: string; port: number }>();
  // Nest's shutdown hooks would end this whole process on Ctrl-C; npm start stops the gateway itself.
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  let gateway: Gateway;
  try {
    gateway = await startGateway({
      config,
      logger,
      redis,
      registry: createMetricsRegistry('gateway'),
      checks: [redisCheck(redis)],
      routerEndpoint: (siteId) => endpoints.get(siteId) ?? { host: '127.0.0.1', port: 1 },
    });
    await gateway.app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
  } catch (err) {
    redis.disconnect();
    throw err;
  } finally {
    for (const s of SIGNALS) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.off(s, l);
  }
  const fake = gateway.runtime.fake as FakeOpenVpnServer;
  return {
    gateway,
    async connect(siteId, endpoint, user, password) {
      endpoints.set(siteId, endpoint);
      // A freshly onboarded site is refused until a sync brings its verifier: sync first.
      for (let attempt = 0; attempt < 5; attempt++) {
        await gateway.directory.sync().catch(() => undefined);
        const out = await fake.connectTunnel({ username: user, password, ip: '127.0.0.1' }).outcome;
        if (out.outcome === 'authorized') return true;
        await new Promise((r) => setTimeout(r, 2000));
      }
      return false;
    },
    async close() {
      await gateway.close();
      redis.disconnect();
    },
  };
}
