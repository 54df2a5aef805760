import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig } from '@backplane/config';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { counters, resetCounters } from '../../apps/routeros-sim/src/model/dynamics';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from '../gateway/control-plane';

/**
 * The gateway's telemetry poller end to end: real api (PostgreSQL, Redis), the gateway with
 * the fake openvpn management server, simulated routers standing in for the far end of each
 * tunnel, TELEMETRY_INTERVAL=1.
 */

interface RawRow {
  at: Date;
  cpu_load: number | null;
  memory_used: string | null;
  memory_total: string | null;
  uptime_seconds: string | null;
  tunnel_bytes_in: string | null;
  latency_ms: number | null;
  temperature_c: number | null;
  interfaces_down: number | null;
}

describe('telemetry poller on the gateway', () => {
  let cp: ControlPlane;
  let gw: Gateway;
  let redis: Redis;
  let dataDir: string;
  const routers = new Map<string, SimRouter>();
  let a: TestSite;
  let b: TestSite;

  const fake = (): FakeOpenVpnServer => gw.runtime.fake as FakeOpenVpnServer;
  const raw = async (siteId: string): Promise<RawRow[]> =>
    await cp.h.ds.query<RawRow[]>(`SELECT * FROM telemetry_samples WHERE site_id = $1 ORDER BY at`, [siteId]);
  const ifaceRates = async (siteId: string, name: string) =>
    await cp.h.ds.query<{ at: Date; rx_bps: number; tx_bps: number }[]>(
      `SELECT at, rx_bps, tx_bps FROM telemetry_interface_samples WHERE site_id = $1 AND name = $2 ORDER BY at`,
      [siteId, name],
    );

  beforeAll(async () => {
    cp = await startControlPlane();
    redis = new Redis(testSettings().redisUrl);
    dataDir = mkdtempSync(join(tmpdir(), 'bp-telemetry-'));
    a = await cp.addSite('site-a');
    b = await cp.addSite('site-b');
    for (const [site, identity] of [
      [a, 'router-a'],
      [b, 'router-b'],
    ] as const) {
      routers.set(
        site.id,
        await startRouter({
          identity,
          rebootDelayMs: 300,
          users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }],
        }),
      );
    }
    const config = loadGatewayConfig({
      REDIS_URL: testSettings().redisUrl,
      DATA_DIR: dataDir,
      GATEWAY_API_URL: cp.url,
      GATEWAY_OPENVPN: 'fake',
      GATEWAY_PORT: String(await freePort()),
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-telemetry',
      TELEMETRY_INTERVAL: '1',
    });
    gw = await startGateway({
      config,
      logger: createLogger({ app: 'gateway-test', level: 'silent' }),
      redis,
      registry: createMetricsRegistry('gateway'),
      syncIntervalMs: 300,
      latencyIntervalMs: 1000,
      routerEndpoint: (siteId) => {
        const r = routers.get(siteId);
        return r ? { host: r.host, port: r.port } : { host: '127.0.0.1', port: 1 };
      },
    });
    await gw.app.listen(config.GATEWAY_PORT, '127.0.0.1');
    const t = fake().connectTunnel({ username: a.user, password: a.password, ip: '198.51.100.7' });
    expect((await t.outcome).outcome).toBe('authorized');
  });

  afterAll(async () => {
    await gw?.close();
    for (const r of routers.values()) await r.stop();
    redis?.disconnect();
    await cp?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('stores samples of the online site with its resources, tunnel bytes and latency; the offline site has none', async () => {
    const rows = await until(async () => ((await raw(a.id)).length >= 4 ? raw(a.id) : undefined), 20_000, 'samples');
    const last = rows.at(-1)!;
    expect(last.cpu_load).toBeGreaterThanOrEqual(0);
    expect(last.cpu_load).toBeLessThanOrEqual(100);
    expect(Number(last.memory_total)).toBe(268_435_456); // what the simulator reports
    expect(Number(last.memory_used)).toBeGreaterThan(0);
    expect(Number(last.memory_used)).toBeLessThan(Number(last.memory_total));
    expect(Number(last.uptime_seconds)).toBeGreaterThanOrEqual(1);
    expect(last.tunnel_bytes_in).not.toBeNull();
    expect(last.latency_ms).not.toBeNull();
    // about one sample a second, not bunched
    const gaps = rows.slice(1).map((r, i) => r.at.getTime() - rows[i]!.at.getTime());
    for (const g of gaps) expect(g).toBeGreaterThan(500);
    expect(await raw(b.id)).toEqual([]);
    // the chart endpoint shows it too
    const h = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${a.id}/telemetry?range=1h`, {
      token: cp.token,
    });
    expect(h.status).toBe(200);
    expect(h.body.points.length).toBeGreaterThanOrEqual(1);
    expect(Object.keys(h.body.interfaces)).toContain('ether1');
  });

  it('stores the temperature /system/health reports and how many enabled interfaces are not running (ADR 0104)', async () => {
    const first = await until(async () => (await raw(a.id)).at(-1), 20_000, 'a sample');
    // The simulator's sensor: 41 °C ± 4.
    expect(first.temperature_c).toBeGreaterThanOrEqual(37);
    expect(first.temperature_c).toBeLessThanOrEqual(45);
    const before = first.interfaces_down;
    expect(before).not.toBeNull();
    const router = routers.get(a.id)!;
    router.state.setLink('ether3', false);
    try {
      await until(
        async () => (await raw(a.id)).some((r) => r.at > first.at && r.interfaces_down === before! + 1),
        20_000,
        'a sample with ether3 down',
      );
    } finally {
      router.state.setLink('ether3', true);
    }
  });

  it('computes interface rates that match the counters the simulator reports', async () => {
    const router = routers.get(a.id)!;
    const ether1 = router.state.find('interface', { name: 'ether1' })!;
    const rates = await until(
      async () => ((await ifaceRates(a.id, 'ether1')).length >= 3 ? ifaceRates(a.id, 'ether1') : undefined),
      20_000,
      'interface rates',
    );
    const samples = await raw(a.id);
    const uptimeAt = (t: Date) => (t.getTime() - router.state.bootedAt) / 1000;
    let compared = 0;
    for (const r of rates) {
      const i = samples.findIndex((s) => s.at.getTime() === r.at.getTime());
      const prev = samples[i - 1];
      if (!prev) continue;
      const c1 = counters(router.state, ether1, uptimeAt(prev.at));
      const c2 = counters(router.state, ether1, uptimeAt(r.at));
      const seconds = (r.at.getTime() - prev.at.getTime()) / 1000;
      const rx = ((c2.rxByte - c1.rxByte) * 8) / seconds;
      const tx = ((c2.txByte - c1.txByte) * 8) / seconds;
      expect(Math.abs(r.rx_bps - rx) / rx, `rx at ${r.at.toISOString()}`).toBeLessThan(0.05);
      expect(Math.abs(r.tx_bps - tx) / tx, `tx at ${r.at.toISOString()}`).toBeLessThan(0.05);
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(2);
  });

  it('stays sane through a counter reset and a reboot: no negative or absurd rates, then rates resume', async () => {
    const router = routers.get(a.id)!;
    const ether1 = router.state.find('interface', { name: 'ether1' })!;
    const since = new Date();
    resetCounters(router.state, ether1);
    await router.reboot();
    await until(
      async () => {
        const rows = (await ifaceRates(a.id, 'ether1')).filter((r) => r.at > since);
        return rows.length >= 3 ? rows : undefined;
      },
      20_000,
      'rates after the reboot',
    );
    const after = (await ifaceRates(a.id, 'ether1')).filter((r) => r.at > since);
    for (const r of after) {
      expect(r.rx_bps).toBeGreaterThanOrEqual(0);
      expect(r.rx_bps).toBeLessThan(20e6); // ether1 in the simulator carries a few Mbit/s
    }
    const samples = (await raw(a.id)).filter((s) => s.at > since);
    expect(samples.some((s) => Number(s.uptime_seconds) <= 3)).toBe(true); // the reboot was seen
  });

  it('stops sampling a site whose tunnel went down', async () => {
    const t = [...fake().tunnels.values()].find((x) => x.username === a.user && x.state === 'authorized')!;
    fake().disconnectTunnel(t.cid);
    await until(() => Promise.resolve(!gw.tunnels.tunnelOf(a.id)), 5000, 'tunnel down');
    await new Promise((r) => setTimeout(r, 1500)); // a poll in flight may still land
    const before = (await raw(a.id)).length;
    await new Promise((r) => setTimeout(r, 2500));
    expect((await raw(a.id)).length).toBe(before);
    expect(await raw(b.id)).toEqual([]);
  });
});
