/**
 * The campaign's gateway process: `node dist/scripts/chaos/gateway.js <config.json>`. The
 * regional gateway (apps/gateway) on its fake openvpn management server, as `npm start`
 * runs it without real tunnels (scripts/dev/fake-gateway.ts); each simulated router's
 * tunnel is emulated with the tunnel credentials the control plane issued, and the relay
 * reaches the router at its link proxy. A gateway that dies takes its tunnels with it (they
 * lived in its openvpn); the next start redials them, as routers redial a restarted openvpn.
 * Prints `chaos-gateway ready` once it serves, `chaos-gateway tunnels up` once every tunnel is.
 */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import type { Env } from '@backplane/config';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { startFakeGateway } from '../dev/fake-gateway';

export interface ChaosGatewayTunnel {
  readonly siteId: string;
  /** Where the router's API listens (the gateway↔router link proxy). */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
}

export interface ChaosGatewayConfig {
  readonly env: Env;
  readonly tunnels: readonly ChaosGatewayTunnel[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: chaos/gateway <config.json>');
  const config = JSON.parse(readFileSync(file, 'utf8')) as ChaosGatewayConfig;
  const gw = await startFakeGateway(config.env);
  const fake = gw.gateway.runtime.fake as FakeOpenVpnServer;
  let stopping = false;
  process.stdout.write(`chaos-gateway ready pid=${process.pid}\n`);
  const up = (t: ChaosGatewayTunnel) =>
    [...fake.tunnels.values()].some((x) => x.username === t.user && x.state === 'authorized');
  // Every tunnel dialled until it is up, and again whenever it goes (a router redials).
  const keep = async (t: ChaosGatewayTunnel) => {
    while (!stopping) {
      if (!up(t)) await gw.connect(t.siteId, { host: t.host, port: t.port }, t.user, t.password).catch(() => false);
      await sleep(500);
    }
  };
  for (const t of config.tunnels) void keep(t);
  void (async () => {
    while (!stopping && !config.tunnels.every(up)) await sleep(100);
    if (!stopping) process.stdout.write('chaos-gateway tunnels up\n');
  })();
  const stop = async () => {
    stopping = true;
    await gw.close().catch(() => undefined);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err instanceof Error ? err.stack : err)}\n`);
  process.exit(1);
});
