import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gatewayKey, type GatewayLinkRecord } from '@backplane/gateway-link';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from './control-plane';

/**
 * Stopping the gateway PROCESS (built JS, fake openvpn) with SIGTERM while the api holds a
 * relayed monitor-traffic stream and a call open: the process exits promptly with 0, the call
 * still gets its answer, the stream's NDJSON response ends cleanly, and the router sees the
 * command cancelled and the session closed.
 */
const ROOT = resolve(__dirname, '../..');

// The gateway as main.ts runs it, with the router's API at the simulator instead of the
// tunnel address and the site's tunnel announced to the fake management server.
const CHILD = `
require('reflect-metadata');
const { loadGatewayConfig } = require('./dist/libs/config/src');
const { createLogger, createMetricsRegistry, createRedis } = require('./dist/libs/observability/src');
const { startGateway } = require('./dist/apps/gateway/src/gateway');
(async () => {
  const a = JSON.parse(process.argv[1]);
  const config = loadGatewayConfig();
  const logger = createLogger({ app: 'gateway', level: 'info' });
  const redis = createRedis(config.REDIS_URL, logger.child({ component: 'redis' }));
  const gw = await startGateway({
    config, logger, redis, registry: createMetricsRegistry('gateway'),
    routerEndpoint: () => ({ host: '127.0.0.1', port: a.routerPort }),
  });
  const close = gw.app.close.bind(gw.app);
  gw.app.close = async () => { await close(); redis.disconnect(); };
  gw.exitOnSignals(() => gw.app.close());
  await gw.app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
  await gw.directory.sync();
  const out = await gw.runtime.fake.connectTunnel({ username: a.user, password: a.password, ip: '198.51.100.7' }).outcome;
  process.stdout.write('SHUTDOWN-TEST ' + JSON.stringify({ tunnel: out.outcome, gatewayId: gw.identity.gatewayId }) + '\\n');
})().catch((err) => { process.stderr.write(String(err && err.stack) + '\\n'); process.exit(1); });
`;

/** A TCP relay in front of the router that keeps what the gateway sent. */
function recordingProxy(target: number): Promise<{ server: Server; port: number; sent: () => string }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((c) => {
    const up = createConnection(target, '127.0.0.1');
    sockets.add(c).add(up);
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      up.write(d);
    });
    up.pipe(c);
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    c.on('error', () => undefined);
    up.on('error', () => undefined);
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () =>
      r({ server, port: (server.address() as AddressInfo).port, sent: () => Buffer.concat(chunks).toString('latin1') }),
    ),
  );
}

describe('gateway shutdown', () => {
  let cp: ControlPlane;
  let redis: Redis;
  let router: SimRouter;
  let proxy: Awaited<ReturnType<typeof recordingProxy>>;
  let site: TestSite;
  let dataDir: string;
  let child: ChildProcess | undefined;
  let output = '';

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    cp = await startControlPlane();
    redis = new Redis(testSettings().redisUrl);
    dataDir = mkdtempSync(join(tmpdir(), 'bp-gw-shutdown-'));
    site = await cp.addSite('site-stop');
    router = await startRouter({
      identity: 'router-stop',
      users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }],
    });
    proxy = await recordingProxy(router.port);
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await new Promise<void>((r) => (proxy ? proxy.server.close(() => r()) : r()));
    await router?.stop();
    redis?.disconnect();
    await cp?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('on SIGTERM ends a relayed stream cleanly, cancels it on the router and exits 0 within 10 s', async () => {
    const port = await freePort();
    const proc = spawn(
      process.execPath,
      ['-e', CHILD, JSON.stringify({ routerPort: proxy.port, user: site.user, password: site.password })],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          REDIS_URL: testSettings().redisUrl,
          DATA_DIR: dataDir,
          GATEWAY_API_URL: cp.url,
          GATEWAY_OPENVPN: 'fake',
          GATEWAY_HOST: '127.0.0.1',
          GATEWAY_PORT: String(port),
          GATEWAY_REDIS_PREFIX: cp.h.prefix,
          GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
          GATEWAY_NAME: 'gw-stop',
          LOG_LEVEL: 'info',
        },
      },
    );
    child = proc;
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
      proc.once('exit', (code, signal) => r({ code, signal, at: Date.now() })),
    );
    const ready = await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`gateway exited early:\n${output}`);
        const line = output.split('\n').find((l) => l.startsWith('SHUTDOWN-TEST '));
        return line
          ? (JSON.parse(line.slice('SHUTDOWN-TEST '.length)) as { tunnel: string; gatewayId: string })
          : false;
      },
      60_000,
      'gateway up with the site tunnel',
    );
    expect(ready.tunnel).toBe('authorized');
    const link = JSON.parse(
      (await redis.get(gatewayKey(cp.h.prefix, ready.gatewayId))) ?? '{}',
    ) as Partial<GatewayLinkRecord>;
    expect(link.token).toBeTruthy();

    // what the api does for the live traffic chart: a relayed monitor-traffic stream
    const res = await fetch(`${link.url}/internal/v1/sites/${site.id}/stream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${link.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        credentials: { username: 'bp-api', password: 'router-secret-1' },
        command: '/interface/monitor-traffic',
        attributes: { interface: 'ether1' },
      }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    while (text.split('\n').filter(Boolean).length < 2) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended early: ${text}`);
      text += Buffer.from(value).toString();
    }
    expect(router.connections).toBe(1);
    expect(proxy.sent()).not.toContain('/cancel');

    // a short call in flight when the signal comes (the router answers after 1.5 s) still gets its answer
    router.faults.latencyMs = 1500;
    const call = fetch(`${link.url}/internal/v1/sites/${site.id}/call`, {
      method: 'POST',
      headers: { authorization: `Bearer ${link.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        credentials: { username: 'bp-api', password: 'router-secret-1' },
        command: '/system/identity/print',
      }),
    });
    await until(() => proxy.sent().includes('/system/identity/print'), 5000, 'call sent to the router');

    const t0 = Date.now();
    proc.kill('SIGTERM');
    const answered = await call;
    expect(answered.status).toBe(200);
    expect(await answered.json()).toEqual({ rows: [{ name: 'router-stop' }] });
    // the response ends (no error, no reset) while the gateway stops
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    const rows = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    expect(rows.every((r) => 'rx-bits-per-second' in r && !('error' in r))).toBe(true);

    const exit = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 12_000))]);
    expect(exit, `gateway still running 12 s after SIGTERM:\n${output.slice(-3000)}`).toBeDefined();
    expect(exit!.at - t0).toBeLessThan(10_000);
    expect({ code: exit!.code, signal: exit!.signal }).toEqual({ code: 0, signal: null });
    // the router was told to stop the command, then the pooled session closed
    expect(proxy.sent()).toMatch(/\/cancel/);
    await until(() => router.connections === 0, 2000, 'router session closed');
    expect(output).toMatch(/gateway stopped/);
  }, 90_000);
});
