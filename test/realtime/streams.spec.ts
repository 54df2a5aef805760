import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig } from '@backplane/config';
import type { LogLine, TrafficSample } from '@backplane/contracts';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { RealtimeServer } from '../../apps/api/src/realtime/realtime.server';
import { addMember, createTenant, login, PASSWORD } from '../api/harness';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from '../gateway/control-plane';
import { client, secondReplica, sleep, until, type TestClient } from './realtime-helpers';

/**
 * Site streams end to end: portal sockets → api (socket.io) → gateway relay (fake openvpn
 * tunnel) → simulated router. Counts the router's running `monitor-traffic` / `log listen`
 * commands on the simulator itself, so "stopped" means the RouterOS command ended.
 */
function runningCommands(router: SimRouter, command: string): Set<object> {
  const active = new Set<object>();
  const engine = router.engine;
  const execute = engine.execute.bind(engine);
  engine.execute = (session, request, out) => {
    const h = execute(session, request, out);
    if (!h || request.command !== command) return h;
    const handle = {
      stop: () => {
        active.delete(handle);
        h.stop();
      },
      get rows() {
        return h.rows;
      },
    };
    active.add(handle);
    return handle;
  };
  return active;
}

describe('realtime site streams', () => {
  let cp: ControlPlane;
  let gw: Gateway | undefined;
  let redis: Redis;
  let dataDir: string;
  let router: SimRouter;
  let site: TestSite;
  let monitors: Set<object>;
  let listens: Set<object>;
  let viewerToken: string;
  let tenantB: string;
  let tokenB: string;
  const clients: TestClient[] = [];
  const open = (...args: Parameters<typeof client>) => {
    const c = client(...args);
    clients.push(c);
    return c;
  };
  const rows = (c: TestClient) => {
    const traffic: TrafficSample[][] = [];
    const logs: LogLine[] = [];
    const errors: string[] = [];
    c.rt.on('traffic', (s) => traffic.push([...s.samples]));
    c.rt.on('logs', (s) => logs.push(...s.lines));
    c.rt.on('stream.error', (e) => errors.push(e.message));
    return { traffic, logs, errors };
  };
  const realtime = () => cp.h.app.get(RealtimeServer);

  beforeAll(async () => {
    cp = await startControlPlane();
    redis = new Redis(testSettings().redisUrl);
    dataDir = mkdtempSync(join(tmpdir(), 'bp-rt-streams-'));
    site = await cp.addSite('site-a');
    router = await startRouter({
      identity: 'router-a',
      users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }],
    });
    monitors = runningCommands(router, '/interface/monitor-traffic');
    listens = runningCommands(router, '/log/listen');
    const port = await freePort();
    gw = await startGateway({
      config: loadGatewayConfig({
        REDIS_URL: testSettings().redisUrl,
        DATA_DIR: dataDir,
        GATEWAY_API_URL: cp.url,
        GATEWAY_OPENVPN: 'fake',
        GATEWAY_PORT: String(port),
        GATEWAY_REDIS_PREFIX: cp.h.prefix,
        GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
        GATEWAY_NAME: 'gw-rt',
      }),
      logger: createLogger({ app: 'gateway-test', level: 'warn' }),
      redis,
      registry: createMetricsRegistry('gateway'),
      syncIntervalMs: 300,
      routerEndpoint: () => ({ host: router.host, port: router.port }),
    });
    await gw.app.listen(port, '127.0.0.1');
    const fake = gw.runtime.fake as FakeOpenVpnServer;
    // A fresh source address per attempt: refused attempts (gateway not synced yet) count per address.
    let attempt = 0;
    await until(
      async () => {
        const ip = `198.51.100.${++attempt}`;
        const t = await fake.connectTunnel({ username: site.user, password: site.password, ip }).outcome;
        return t.outcome === 'authorized';
      },
      20_000,
      'tunnel up',
    );
    await until(
      async () =>
        (await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${site.id}/tunnel`, { token: cp.token })).body
          .online === true,
      10_000,
      'site online',
    );
    const member = await addMember(cp.h, cp.token, cp.tenantId, {
      email: 'viewer@rt.test',
      role: 'viewer',
      password: PASSWORD,
    });
    expect(member.status).toBe(201);
    viewerToken = await login(cp.h, 'viewer@rt.test');
    const tb = await createTenant(cp.h, cp.token, {
      slug: 'other',
      name: 'Other',
      owner: { email: 'owner@other.test', password: PASSWORD },
    });
    tenantB = tb.body.id as string;
    tokenB = await login(cp.h, 'owner@other.test');
  });

  afterAll(async () => {
    for (const c of clients) c.rt.close();
    // Keep-alive connections from the in-process api's fetch would hold the gateway's close for ~70 s.
    gw?.app.getHttpServer().closeAllConnections();
    await gw?.close();
    await router?.stop();
    redis?.disconnect();
    await cp?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('traffic starts with the first subscriber, is shared, and the router command ends after the last one leaves', async () => {
    const owner = open(cp.url, cp.tenantId, cp.token);
    const viewer = open(cp.url, cp.tenantId, viewerToken);
    await Promise.all([owner.connected(), viewer.connected()]);
    const got = rows(owner);
    const gotViewer = rows(viewer);
    expect(monitors.size).toBe(0);
    await owner.rt.subscribe(site.id, 'traffic');
    await until(() => got.traffic.length >= 2, 8000, 'traffic rows');
    const names = got.traffic[0]!.map((s) => s.interface);
    expect(names).toContain('ether1');
    expect(got.traffic[0]![0]!.rxBps).toBeGreaterThan(0);
    expect(monitors.size).toBe(1);
    // A viewer may watch; the second subscriber shares the one router command.
    await viewer.rt.subscribe(site.id, 'traffic');
    await until(() => gotViewer.traffic.length >= 1, 5000, 'viewer traffic rows');
    expect(monitors.size).toBe(1);
    expect(realtime().runningStreams).toBe(1);
    const metrics = (await cp.h.call('GET', '/metrics')).body as string;
    expect(metrics).toMatch(/^backplane_api_realtime_site_streams\{app="api"\} 1$/m);
    expect(Number(/^backplane_api_realtime_sockets\{app="api"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    // First one leaves explicitly: the stream goes on for the viewer.
    await owner.rt.unsubscribe(site.id, 'traffic');
    const seen = gotViewer.traffic.length;
    await sleep(1500);
    expect(monitors.size).toBe(1);
    expect(gotViewer.traffic.length).toBeGreaterThan(seen);
    const ownerRows = got.traffic.length;
    // The last one disconnects without unsubscribing: the router's monitor-traffic ends.
    viewer.rt.close();
    await until(() => monitors.size === 0, 5000, 'monitor-traffic cancelled on the router');
    expect(realtime().runningStreams).toBe(0);
    expect(got.traffic.length).toBe(ownerRows); // unsubscribed: nothing more arrived
    expect(got.errors).toEqual([]);
    // Subscribe and unsubscribe again: started and stopped again.
    await owner.rt.subscribe(site.id, 'traffic');
    await until(() => monitors.size === 1, 5000, 'monitor-traffic again');
    await owner.rt.unsubscribe(site.id, 'traffic');
    await until(() => monitors.size === 0, 5000, 'stopped again');
    owner.rt.close();
  });

  it('relays /log/listen lines to log subscribers and ends the listen when they leave', async () => {
    const c = open(cp.url, cp.tenantId, viewerToken);
    await c.connected();
    const got = rows(c);
    await c.rt.subscribe(site.id, 'logs');
    await until(() => listens.size === 1, 5000, 'log listen running');
    // Something happens on the router: a log line is written.
    router.state.log('script,info', 'hello from the router');
    await until(() => got.logs.some((l) => l.message === 'hello from the router'), 5000, 'log line');
    await c.rt.unsubscribe(site.id, 'logs');
    await until(() => listens.size === 0, 5000, 'log listen cancelled');
    c.rt.close();
  });

  it('an unsubscribe sent before the subscribe was answered wins: no stream keeps running for nobody', async () => {
    const c = open(cp.url, cp.tenantId, cp.token);
    await c.connected();
    const got = rows(c);
    // A page opened and left at once (the subscribe's site check is still running).
    await Promise.all([c.rt.subscribe(site.id, 'traffic'), c.rt.unsubscribe(site.id, 'traffic')]);
    await sleep(2500);
    expect(realtime().runningStreams).toBe(0);
    expect(monitors.size).toBe(0);
    expect(got.traffic).toEqual([]);
    // Subscribe, unsubscribe, subscribe (a remount): subscribed once.
    await Promise.all([
      c.rt.subscribe(site.id, 'traffic'),
      c.rt.unsubscribe(site.id, 'traffic'),
      c.rt.subscribe(site.id, 'traffic'),
    ]);
    await until(() => monitors.size === 1 && got.traffic.length >= 1, 8000, 'traffic after the remount');
    await c.rt.unsubscribe(site.id, 'traffic');
    await until(() => monitors.size === 0, 5000, 'stopped');
    c.rt.close();
  });

  it("another tenant's socket cannot subscribe to this tenant's site; bad requests get a clear error", async () => {
    const other = open(cp.url, tenantB, tokenB);
    await other.connected();
    await expect(other.rt.subscribe(site.id, 'traffic')).rejects.toThrow('site not found');
    await sleep(300);
    expect(monitors.size).toBe(0);
    const mine = open(cp.url, cp.tenantId, cp.token);
    await mine.connected();
    await expect(mine.rt.subscribe('not-a-site', 'traffic')).rejects.toThrow(/siteId/);
    await expect(mine.rt.subscribe(site.id, 'video' as never)).rejects.toThrow(/stream/);
    // Telemetry is a room only (the poller emits into it): allowed for the tenant's site.
    await expect(mine.rt.subscribe(site.id, 'telemetry')).resolves.toBeUndefined();
    other.rt.close();
    mine.rt.close();
  });

  it('with two api replicas the stream runs once; it moves to the replica whose subscriber remains', async () => {
    const second = await secondReplica(cp.h);
    try {
      const a = open(cp.url, cp.tenantId, cp.token);
      const b = open(second.url, cp.tenantId, viewerToken);
      await Promise.all([a.connected(), b.connected()]);
      const gotA = rows(a);
      const gotB = rows(b);
      await a.rt.subscribe(site.id, 'traffic');
      await b.rt.subscribe(site.id, 'traffic');
      await until(() => gotA.traffic.length >= 2 && gotB.traffic.length >= 2, 8000, 'rows on both replicas');
      expect(monitors.size).toBe(1); // one router command for both replicas' subscribers
      a.rt.close(); // the owner replica's last subscriber leaves
      const before = gotB.traffic.length;
      await until(() => gotB.traffic.length >= before + 2, 10_000, 'rows after the takeover');
      expect(monitors.size).toBe(1);
      b.rt.close();
      await until(() => monitors.size === 0, 5000, 'stopped after the last subscriber');
    } finally {
      await second.close();
    }
  });
});
