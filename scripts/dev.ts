/**
 * `npm start`: the whole product on one machine with embedded defaults — the control
 * plane, an enrolled gateway and a worker, on DATABASE_URL/REDIS_URL when set, otherwise on
 * a private PostgreSQL cluster and redis-server under DATA_DIR (reused on the next start),
 * and a demo fleet. As root with /dev/net/tun, openvpn and iproute2 the gateway runs a real
 * openvpn and every demo router tunnels to it from its own network namespace
 * (scripts/dev/network.ts); elsewhere the gateway runs in this process on its fake
 * management server and the routers' tunnels are emulated (scripts/dev/fake-gateway.ts).
 * Ctrl-C stops everything and removes the namespaces.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, parseVars, processEnv } from '@backplane/config';
import {
  DEMO_EMAIL,
  demoBootstrap,
  prepareDemo,
  startDemoFleet,
  VERSIONS,
  waitForDemoTunnels,
  type DemoFleet,
  type DemoSetup,
} from './dev/demo';
import { EmbeddedServicesError, startEmbeddedPostgres, startEmbeddedRedis, type EmbeddedService } from './dev/embedded';
import { startFakeGateway, type FakeGateway } from './dev/fake-gateway';
import { DevLogs } from './dev/logs';
import { realTunnelsUnavailable, startDevNetwork, sweepDevNetwork, type DevNetwork } from './dev/network';
import { Supervisor, type AppSpec } from './dev/supervisor';
import { killLeftOpenVpnSync, stopLeftOpenVpn } from '../apps/gateway/src/openvpn-runtime';

const EXIT_CONFIG = 78;

function say(line: string): void {
  process.stdout.write(`[backplane] ${line}\n`);
}

async function main(): Promise<number> {
  const env = processEnv();
  const cfg = parseVars(
    [
      'DATA_DIR',
      'API_HOST',
      'API_PORT',
      'GATEWAY_HOST',
      'GATEWAY_PORT',
      'WORKER_HOST',
      'WORKER_PORT',
      'DEV_POSTGRES_PORT',
      'DEV_REDIS_PORT',
      'GATEWAY_OPENVPN_PORT',
      'GATEWAY_OPENVPN',
    ],
    env,
  );
  const dataDir = resolve(cfg.DATA_DIR);
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  // Traversable (not listable) so the embedded PostgreSQL, running as `postgres` under
  // root, can reach its own directory; secrets.json itself stays 0600.
  chmodSync(dataDir, 0o711);
  // Each app's full output goes to DATA_DIR/logs/<app>.log; the terminal gets warnings, errors and the banner.
  const logs = new DevLogs(dataDir);

  const embedded: EmbeddedService[] = [];
  const stopEmbedded = async () => {
    for (const s of embedded.reverse()) await s.stop();
  };
  let databaseUrl = env['DATABASE_URL'];
  let redisUrl = env['REDIS_URL'];
  try {
    if (!databaseUrl) {
      const pg = await startEmbeddedPostgres(dataDir, cfg.DEV_POSTGRES_PORT);
      embedded.push(pg);
      databaseUrl = pg.url;
    }
    if (!redisUrl) {
      const redis = await startEmbeddedRedis(dataDir, cfg.DEV_REDIS_PORT);
      embedded.push(redis);
      redisUrl = redis.url;
    }
  } catch (err) {
    await stopEmbedded();
    throw err;
  }

  // Real tunnels when this machine can run them (and GATEWAY_OPENVPN does not say fake).
  const left = sweepDevNetwork();
  if (left.length) say(`removed what an earlier npm start left behind: ${left.join(', ')}`);
  const noTunnels = cfg.GATEWAY_OPENVPN === 'fake' ? 'GATEWAY_OPENVPN=fake' : realTunnelsUnavailable();
  let network: DevNetwork | undefined;
  if (!noTunnels) {
    try {
      network = await startDevNetwork(VERSIONS.length, { host: cfg.API_HOST, port: cfg.API_PORT });
    } catch (err) {
      await stopEmbedded();
      throw err;
    }
  }

  // The demo tenant's owner is created by the api on an empty database (first start only).
  const demo = env['BOOTSTRAP_OWNER_EMAIL'] ? undefined : demoBootstrap(dataDir);
  const childEnv = {
    ...env,
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    // One line per HTTP request is noise here (the demo routers poll all the time): debug, unless set.
    LOG_REQUEST_LEVEL: env['LOG_REQUEST_LEVEL'] ?? 'debug',
    ...(demo
      ? {
          BOOTSTRAP_OWNER_EMAIL: demo.email,
          BOOTSTRAP_OWNER_PASSWORD: demo.password,
          BOOTSTRAP_TENANT_NAME: 'Demo MSP',
        }
      : {}),
    // Routers in their namespaces reach the api through the forward on the dev network.
    ...(network && !env['CONTROLLER_PUBLIC_URL']
      ? { CONTROLLER_PUBLIC_URL: `http://${network.publicIp}:${cfg.API_PORT}` }
      : {}),
  };
  const dist = resolve(__dirname, '..');
  const url = (host: string, port: number) => `http://${host}:${port}`;
  const apiUrl = url(cfg.API_HOST === '0.0.0.0' ? '127.0.0.1' : cfg.API_HOST, cfg.API_PORT);
  const app = (name: string, env: Record<string, string | undefined>, host: string, port: number): AppSpec => ({
    name,
    script: resolve(dist, `apps/${name}/src/main.js`),
    env,
    healthUrl: `${url(host, port)}/healthz`,
  });
  const supervisor = new Supervisor(logs);
  let fleet: DemoFleet | undefined;
  let fakeGateway: FakeGateway | undefined;
  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    // from now on an app that exits stays down (the fleet and gateway stop first)
    supervisor.halting();
    say('stopping...');
    await fleet?.stop();
    await fakeGateway?.close();
    await supervisor.stop();
    // the gateway leaves its openvpn running when it stops (ADR 0062); the whole stack stopping takes it down
    await stopLeftOpenVpn(dataDir).catch(() => undefined);
    await network?.close();
    await stopEmbedded();
    await logs.close();
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => {
    if (shuttingDown) {
      // a second Ctrl-C: leave no namespace (or router inside one) behind
      network?.lab.destroySync();
      killLeftOpenVpnSync(dataDir);
      // in their own process groups: the Ctrl-C did not reach them
      for (const s of embedded) s.stopNow();
      process.exit(130);
    }
    void shutdown(0);
  });
  process.on('SIGTERM', () => void shutdown(0));
  supervisor.onFatal((reason) => {
    say(reason);
    void shutdown(EXIT_CONFIG);
  });

  // api first (it migrates the schema the worker checks at start: started together, a fresh
  // database made the worker exit once and restart), then the worker; the gateway's enrollment
  // token comes from the api.
  try {
    await supervisor.start([app('api', childEnv, cfg.API_HOST, cfg.API_PORT)], 60_000);
    await supervisor.start([app('worker', childEnv, cfg.WORKER_HOST, cfg.WORKER_PORT)], 60_000);
  } catch (err) {
    say(`start failed: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown(EXIT_CONFIG);
    return EXIT_CONFIG;
  }

  const enrolled = existsSync(join(dataDir, 'gateway', 'identity.json')) || Boolean(env['GATEWAY_CREDENTIAL']);
  let setup: DemoSetup | undefined;
  let demoError: string | undefined;
  try {
    setup = await prepareDemo({
      dataDir,
      apiUrl,
      bootstrap: demo,
      region: { publicHost: network?.publicIp ?? '127.0.0.1', publicPort: cfg.GATEWAY_OPENVPN_PORT },
      enrollGateway: !enrolled && !env['GATEWAY_ENROLLMENT_TOKEN'],
    });
  } catch (err) {
    demoError = err instanceof Error ? err.message : String(err);
  }
  const gatewayEnv = {
    ...childEnv,
    GATEWAY_OPENVPN: network ? 'real' : 'fake',
    GATEWAY_API_URL: env['GATEWAY_API_URL'] ?? apiUrl,
    ...(setup?.enrollmentToken ? { GATEWAY_ENROLLMENT_TOKEN: setup.enrollmentToken } : {}),
  };
  try {
    if (!network && (enrolled || gatewayEnv.GATEWAY_ENROLLMENT_TOKEN)) {
      // in this process: the demo fleet announces emulated tunnels to its fake management server
      fakeGateway = await startFakeGateway(gatewayEnv, logs.of('gateway'));
    } else await supervisor.start([app('gateway', gatewayEnv, cfg.GATEWAY_HOST, cfg.GATEWAY_PORT)], 60_000);
  } catch (err) {
    say(`start failed: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown(EXIT_CONFIG);
    return EXIT_CONFIG;
  }
  const gatewayLine = enrolled
    ? 'enrolled (identity kept in DATA_DIR/gateway/identity.json)'
    : setup?.enrollmentToken || env['GATEWAY_ENROLLMENT_TOKEN']
      ? 'enrolled just now in region "local"'
      : 'NOT enrolled (no demo owner to create an enrollment token): see its log';

  let demoLines: string[] = [];
  if (setup) {
    try {
      fleet = await startDemoFleet({
        apiUrl,
        state: setup.state,
        bootstrap: demo,
        network,
        ...(fakeGateway ? { fakeTunnels: fakeGateway } : {}),
      });
      if (network) say(`waiting up to 60 s for the ${setup.state.sites.length} demo routers to come online...`);
      demoLines = [
        ...fleet.lines,
        ...(network || fakeGateway
          ? await waitForDemoTunnels(apiUrl, setup.state, 60_000)
          : [`  ${''.padEnd(15)}health shows "degraded" = polling, tunnel down; live calls and jobs need the tunnel.`]),
      ];
    } catch (err) {
      demoError = err instanceof Error ? err.message : String(err);
    }
  }
  if (demoError) demoLines.push(`  ${'demo'.padEnd(15)}not started: ${demoError}`);

  const hidePassword = (u: string) => u.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@');
  const pad = (s: string) => s.padEnd(15);
  const details = [
    '',
    `Details (data in ${dataDir})`,
    `  ${pad('control plane')}${url(cfg.API_HOST, cfg.API_PORT)}   REST /api/v1 · /healthz · /readyz · /metrics`,
    `  ${pad('gateway')}${url(cfg.GATEWAY_HOST, cfg.GATEWAY_PORT)}   /healthz · /readyz · /metrics; ${gatewayLine}`,
    network
      ? `  ${pad('tunnels')}real openvpn on :${cfg.GATEWAY_OPENVPN_PORT} (region host ${network.publicIp}); routers in network namespaces ${network.lab.names.map((n) => n.replace(/^.*-/, '')).join(', ')} (${network.lab.tag}-${process.pid}-*)`
      : `  ${pad('tunnels')}EMULATED: the gateway runs its FAKE management server (${noTunnels}); real tunnels need root, /dev/net/tun, openvpn and iproute2`,
    `  ${pad('worker')}${url(cfg.WORKER_HOST, cfg.WORKER_PORT)}   /healthz · /readyz · /metrics`,
    `  ${pad('PostgreSQL')}${hidePassword(databaseUrl)}${env['DATABASE_URL'] ? '' : '   (embedded)'}`,
    `  ${pad('Redis')}${hidePassword(redisUrl)}${env['REDIS_URL'] ? '' : '   (embedded)'}`,
    `  ${pad('secrets')}${resolve(dataDir, 'secrets.json')}   (back this file up)`,
    `  ${pad('logs')}${logs.dir}/<app>.log, in full (the terminal shows warnings and errors; one line per HTTP request at LOG_REQUEST_LEVEL=${childEnv.LOG_REQUEST_LEVEL})`,
    ...demoLines,
  ];
  // The short banner, printed last so it is what the terminal shows: where to go, how to sign in.
  const owner = demo
    ? `${demo.email} / ${demo.password}   (password shown only this once: note it now)`
    : env['BOOTSTRAP_OWNER_EMAIL']
      ? `${env['BOOTSTRAP_OWNER_EMAIL']} / the BOOTSTRAP_OWNER_PASSWORD you set`
      : `${DEMO_EMAIL} (its password was shown at the first start)`;
  const lines = [
    ...details,
    '',
    '========================================================================',
    ' Backplane is running',
    `   ${pad('portal')}${apiUrl}/`,
    `   ${pad('API docs')}${apiUrl}/api/docs   (OpenAPI JSON: ${apiUrl}/api/docs/openapi.json)`,
    `   ${pad('sign in as')}${owner}`,
    `   ${pad('logs')}${logs.dir}/`,
    '========================================================================',
    'Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  return await new Promise<number>(() => undefined);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof EmbeddedServicesError) {
      process.stderr.write(`[backplane] ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    process.stderr.write(`[backplane] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
