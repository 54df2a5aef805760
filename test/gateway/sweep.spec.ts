/**
 * The control plane's offline sweep and region health check (worker schedules), against the
 * real api and worker schedules (PostgreSQL, Redis) and real gateways (fake openvpn
 * management server):
 * - a gateway that stops refreshing its tunnel registry (its entries expire; short TTL
 *   here) leaves its sites online in the database until the sweep marks them offline
 *   with a `disconnect` event (`gateway-lost`) and a realtime `site.status` event;
 * - a gateway whose heartbeat is stale has its sites marked offline even while the
 *   registry entries are still there, and its region is recorded unhealthy;
 * - online/offline changes from gateway events are published too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadGatewayConfig } from '@backplane/config';
import type { SiteStatusData, TenantEvent } from '@backplane/contracts';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { realtimeKeys, replaySince } from '@backplane/realtime';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import type { WorkerSchedules } from '../../apps/worker/src/schedules';
import { freePort, startControlPlane, startSchedules, type ControlPlane, type TestSite } from './control-plane';

describe('offline sweep and region health', () => {
  let cp: ControlPlane;
  let worker: WorkerSchedules;
  let redis: Redis;
  const dirs: string[] = [];
  const gateways: Gateway[] = [];
  const sites: TestSite[] = [];

  async function gateway(
    name: string,
    token: string,
    opts: { registryTtlSeconds?: number; heartbeatIntervalMs?: number } = {},
  ): Promise<Gateway> {
    const dataDir = mkdtempSync(join(tmpdir(), 'bp-sweep-'));
    dirs.push(dataDir);
    const config = loadGatewayConfig({
      REDIS_URL: testSettings().redisUrl,
      DATA_DIR: dataDir,
      GATEWAY_API_URL: cp.url,
      GATEWAY_OPENVPN: 'fake',
      GATEWAY_PORT: String(await freePort()),
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_ENROLLMENT_TOKEN: token,
      GATEWAY_NAME: name,
    });
    const g = await startGateway({
      config,
      logger: createLogger({
        app: 'gw-sweep',
        level: 'warn',
        destination: new Writable({ write: (_c, _e, cb) => cb() }),
      }),
      redis,
      registry: createMetricsRegistry('gateway'),
      syncIntervalMs: 300,
      ...opts,
    });
    gateways.push(g);
    return g;
  }

  const fake = (g: Gateway) => g.runtime.fake as FakeOpenVpnServer;
  /** The site as the control plane stores it (the tunnel endpoint reads the live registry instead). */
  const tunnel = async (s: TestSite) =>
    (await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${s.id}`, { token: cp.token })).body.status as {
      online: boolean;
    };
  const statusEvents = async (): Promise<(TenantEvent & { data: SiteStatusData })[]> => {
    const r = await replaySince(redis, realtimeKeys(cp.h.prefix), cp.tenantId, 0);
    if (r.kind !== 'events') throw new Error('backlog lost');
    return r.events.filter((e): e is TenantEvent & { data: SiteStatusData } => e.type === 'site.status');
  };
  const regionHealth = async (id: string) =>
    (await cp.h.call('GET', `/api/v1/regions/${id}`, { token: cp.token })).body.health as {
      healthy: boolean | null;
      unhealthySince: string | null;
    };
  const lostEvents = (siteId: string) =>
    cp.h.ds.query<{ type: string; reason: string }[]>(
      `SELECT type, reason FROM tunnel_events WHERE site_id = $1 AND reason = 'gateway-lost'`,
      [siteId],
    );

  async function connect(g: Gateway, s: TestSite): Promise<void> {
    const out = await fake(g).connectTunnel({ username: s.user, password: s.password, ip: '198.51.100.9' }).outcome;
    expect(out.outcome).toBe('authorized');
    await until(async () => (await tunnel(s)).online, 10_000, `site ${s.id} online`);
  }

  beforeAll(async () => {
    cp = await startControlPlane('127.0.0.1', { GATEWAY_DOWN_AFTER: '10' });
    worker = await startSchedules(cp.h, {
      GATEWAY_SWEEP_INTERVAL: '1',
      REGION_HEALTH_INTERVAL: '1',
      GATEWAY_DOWN_AFTER: '10',
    });
    redis = new Redis(testSettings().redisUrl);
    for (let i = 0; i < 3; i++) sites.push(await cp.addSite(`sweep-${i}`));
  }, 60_000);

  afterAll(async () => {
    for (const g of gateways) await g.close().catch(() => undefined);
    await worker?.stop();
    redis?.disconnect();
    await cp?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('publishes online from gateway events; sites of a gateway whose registry entries expire go offline', async () => {
    // heartbeats every 2 s (GATEWAY_DOWN_AFTER is 10 s here): only its registry entries lapse
    const gw = await gateway('gw-frozen', await cp.enrollmentToken(), {
      registryTtlSeconds: 3,
      heartbeatIntervalMs: 2000,
    });
    await connect(gw, sites[0]!);
    await connect(gw, sites[1]!);
    // published right after the events commit
    const online = await until(async () => (await statusEvents()).length >= 2 && statusEvents(), 5000, 'status events');
    expect(online.map((e) => [e.data.siteId, e.data.online])).toEqual([
      [sites[0]!.id, true],
      [sites[1]!.id, true],
    ]);
    expect(online[0]!.data.gatewayId).toBe(gw.identity.gatewayId);

    // the gateway stays online for longer than its TTL: the sweep leaves its sites alone
    await new Promise((r) => setTimeout(r, 4500));
    expect((await tunnel(sites[0]!)).online).toBe(true);
    expect(await lostEvents(sites[0]!.id)).toEqual([]);

    // it freezes (stops refreshing its registry, says nothing): entries expire after 3 s
    gw.tunnels.stop();
    const t0 = Date.now();
    for (const s of [sites[0]!, sites[1]!])
      await until(async () => !(await tunnel(s)).online, 10_000, `site ${s.id} offline`);
    const took = Date.now() - t0;
    console.info(`[sweep] registry TTL 3 s, sweep every 1 s: sites offline ${took} ms after the gateway froze`);
    expect(took).toBeLessThan(3000 + 2 * 1000 + 1500);
    for (const s of [sites[0]!, sites[1]!]) {
      expect(await lostEvents(s.id)).toEqual([{ type: 'disconnect', reason: 'gateway-lost' }]);
      const offline = (await statusEvents()).filter((e) => e.data.siteId === s.id && !e.data.online);
      expect(offline).toHaveLength(1);
      expect(offline[0]!.data).toMatchObject({ reason: 'gateway-lost', gatewayId: gw.identity.gatewayId });
    }
  }, 60_000);

  it('sites of a gateway whose heartbeat is stale go offline; its region is recorded unhealthy', async () => {
    const region = await cp.h.call('POST', '/api/v1/regions', {
      token: cp.token,
      body: { slug: 'stale-region', name: 'Stale', publicHost: 'stale.gw.test', latitude: 10, longitude: 10 },
    });
    expect(region.status).toBe(201);
    const et = await cp.h.call('POST', `/api/v1/regions/${region.body.id}/enrollment-tokens`, {
      token: cp.token,
      body: {},
    });
    // heartbeats only at start (the next one would be in 10 minutes)
    const gw = await gateway('gw-stale', et.body.token as string, { heartbeatIntervalMs: 600_000 });
    const s = sites[2]!;
    await connect(gw, s);
    const healthy = await until(
      async () => {
        const r = await regionHealth(region.body.id as string);
        return r.healthy === true && r;
      },
      5000,
      'region healthy',
    );
    expect(healthy.unhealthySince).toBeNull();
    const regionAudit = async () =>
      (
        await cp.h.ds.query<{ action: string }[]>(
          `SELECT action FROM audit_log WHERE target_id = $1 AND action LIKE 'region.%health%' ORDER BY id`,
          [region.body.id],
        )
      ).map((a) => a.action);
    // (a check may have run before its gateway enrolled: then the region started unhealthy and recovered)
    const auditBefore = await regionAudit();
    expect(auditBefore.at(-1) ?? 'region.healthy').toBe('region.healthy');

    // the router's poll stamps last_seen_at with now() (microseconds): the sweep must still match it
    await cp.h.ds.query(`UPDATE sites SET last_seen_at = now() WHERE id = $1`, [s.id]);
    // its last heartbeat is now older than GATEWAY_DOWN_AFTER (10 s); its registry entry is still fresh
    await cp.h.ds.query(`UPDATE gateways SET last_heartbeat_at = now() - interval '1 minute' WHERE id = $1`, [
      gw.identity.gatewayId,
    ]);
    expect(await redis.exists(`${cp.h.prefix}tunnel:${s.id}`)).toBe(1);
    await until(async () => !(await tunnel(s)).online, 5000, 'site offline');
    expect(await lostEvents(s.id)).toEqual([{ type: 'disconnect', reason: 'gateway-lost' }]);
    expect((await statusEvents()).filter((e) => e.data.siteId === s.id).map((e) => e.data.online)).toEqual([
      true,
      false,
    ]);

    const unhealthy = await until(
      async () => {
        const r = await regionHealth(region.body.id as string);
        return r.healthy === false && r;
      },
      5000,
      'region unhealthy',
    );
    expect(unhealthy.unhealthySince).not.toBeNull();
    expect((await regionAudit()).slice(auditBefore.length)).toEqual(['region.unhealthy']);
    // the first region (its gateway still heartbeats) stays healthy
    const first = await cp.h.call('GET', `/api/v1/regions/${cp.regionId}`, { token: cp.token });
    expect(first.body.health.healthy).toBe(true);
  }, 60_000);

  it('one replica at a time: while another holds the sweep lock, a sweep skips its round', async () => {
    const sweep = worker.sweep;
    const other = cp.h.ds.createQueryRunner();
    await other.connect();
    try {
      await other.query(`SELECT pg_advisory_lock(hashtext('backplane:sweep:sites'))`);
      await other.query(`SELECT pg_advisory_lock(hashtext('backplane:sweep:regions'))`);
      expect(await sweep.sweepSites()).toBeNull();
      expect(await sweep.checkRegions()).toBeNull();
      await other.query(`SELECT pg_advisory_unlock_all()`);
      // (the worker's schedules sweep every second too: the next free round is ours)
      const swept = await until(async () => (await sweep.sweepSites()) ?? undefined, 5000, 'a sweep');
      expect(swept.offline).toEqual([]);
      const checked = await until(async () => (await sweep.checkRegions()) ?? undefined, 5000, 'a region check');
      expect(checked.map((r) => r.slug).sort()).toEqual(['stale-region', 'test-region']);
    } finally {
      await other.release();
    }
  });
});
