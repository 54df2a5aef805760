/**
 * `npm start`: the whole product on one machine with embedded defaults — the control
 * plane, a gateway and a worker, on DATABASE_URL/REDIS_URL when set, otherwise on a
 * private PostgreSQL cluster and redis-server under DATA_DIR (reused on the next start).
 * Ctrl-C stops everything.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, parseVars, processEnv } from '@backplane/config';
import { demoBootstrap, ensureDevCa, startDemoFleet, type DemoFleet } from './dev/demo';
import { EmbeddedServicesError, startEmbeddedPostgres, startEmbeddedRedis, type EmbeddedService } from './dev/embedded';
import { Supervisor, type AppSpec } from './dev/supervisor';

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
    ],
    env,
  );
  const dataDir = resolve(cfg.DATA_DIR);
  mkdirSync(dataDir, { recursive: true, mode: 0o711 });
  // Traversable (not listable) so the embedded PostgreSQL, running as `postgres` under
  // root, can reach its own directory; secrets.json itself stays 0600.
  chmodSync(dataDir, 0o711);

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

  // The demo tenant's owner is created by the api on an empty database (first start only).
  const demo = env['BOOTSTRAP_OWNER_EMAIL'] ? undefined : demoBootstrap(dataDir);
  await ensureDevCa(dataDir);
  const childEnv = {
    ...env,
    DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    ...(demo
      ? {
          BOOTSTRAP_OWNER_EMAIL: demo.email,
          BOOTSTRAP_OWNER_PASSWORD: demo.password,
          BOOTSTRAP_TENANT_NAME: 'Demo MSP',
        }
      : {}),
  };
  const dist = resolve(__dirname, '..');
  const url = (host: string, port: number) => `http://${host}:${port}`;
  const apps: AppSpec[] = [
    {
      name: 'api',
      script: resolve(dist, 'apps/api/src/main.js'),
      env: childEnv,
      healthUrl: `${url(cfg.API_HOST, cfg.API_PORT)}/healthz`,
    },
    {
      name: 'gateway',
      script: resolve(dist, 'apps/gateway/src/main.js'),
      env: childEnv,
      healthUrl: `${url(cfg.GATEWAY_HOST, cfg.GATEWAY_PORT)}/healthz`,
    },
    {
      name: 'worker',
      script: resolve(dist, 'apps/worker/src/main.js'),
      env: childEnv,
      healthUrl: `${url(cfg.WORKER_HOST, cfg.WORKER_PORT)}/healthz`,
    },
  ];
  const supervisor = new Supervisor(apps);
  let fleet: DemoFleet | undefined;
  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    say('stopping...');
    await fleet?.stop();
    await supervisor.stop();
    await stopEmbedded();
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => {
    if (shuttingDown) process.exit(130);
    void shutdown(0);
  });
  process.on('SIGTERM', () => void shutdown(0));

  try {
    await supervisor.start(60_000);
  } catch (err) {
    say(`start failed: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown(EXIT_CONFIG);
    return EXIT_CONFIG;
  }
  supervisor.onFatal((reason) => {
    say(reason);
    void shutdown(EXIT_CONFIG);
  });

  let demoLines: string[];
  try {
    fleet = await startDemoFleet({
      dataDir,
      apiUrl: url(cfg.API_HOST, cfg.API_PORT),
      bootstrap: demo,
      openvpnPort: cfg.GATEWAY_OPENVPN_PORT,
    });
    demoLines = fleet.lines;
  } catch (err) {
    demoLines = [`  ${'demo'.padEnd(15)}not started: ${err instanceof Error ? err.message : String(err)}`];
  }

  const hidePassword = (u: string) => u.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@');
  const pad = (s: string) => s.padEnd(15);
  const lines = [
    '',
    `Backplane is running (data in ${dataDir})`,
    `  ${pad('control plane')}${url(cfg.API_HOST, cfg.API_PORT)}   REST /api/v1 · /healthz · /readyz · /metrics`,
    `  ${pad('gateway')}${url(cfg.GATEWAY_HOST, cfg.GATEWAY_PORT)}   /healthz · /readyz · /metrics`,
    `  ${pad('worker')}${url(cfg.WORKER_HOST, cfg.WORKER_PORT)}   /healthz · /readyz · /metrics`,
    `  ${pad('PostgreSQL')}${hidePassword(databaseUrl)}${env['DATABASE_URL'] ? '' : '   (embedded)'}`,
    `  ${pad('Redis')}${hidePassword(redisUrl)}${env['REDIS_URL'] ? '' : '   (embedded)'}`,
    `  ${pad('secrets')}${resolve(dataDir, 'secrets.json')}   (back this file up)`,
    ...demoLines,
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
