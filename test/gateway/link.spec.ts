import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGatewayConfig } from '@backplane/config';
import { siteIdToTunnelUser } from '@backplane/contracts';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { freePort, startControlPlane, type ControlPlane } from './control-plane';

/**
 * The gateway <-> control plane link as a new user meets it: a router onboarded after the
 * gateway started gets in on its first tunnel attempt (issue 13, defect 9), and the relay's
 * calls show on the gateway's /metrics by command class and outcome.
 */
describe('gateway link: fresh sites and relay metrics', () => {
  let cp: ControlPlane;
  let gw: Gateway;
  let redis: Redis;
  let dataDir: string;
  let gwPort = 0;
  const routers = new Map<string, SimRouter>();

  beforeAll(async () => {
    cp = await startControlPlane();
    redis = new Redis(testSettings().redisUrl);
    dataDir = mkdtempSync(join(tmpdir(), 'bp-gw-link-'));
    gwPort = await freePort();
    const config = loadGatewayConfig({
      REDIS_URL: testSettings().redisUrl,
      DATA_DIR: dataDir,
      GATEWAY_API_URL: cp.url,
      GATEWAY_OPENVPN: 'fake',
      GATEWAY_PORT: String(gwPort),
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-link',
      TELEMETRY_INTERVAL: '3600',
    });
    gw = await startGateway({
      config,
      logger: createLogger({ app: 'gateway-link-test', level: 'silent' }),
      redis,
      registry: createMetricsRegistry('gateway'),
      // the periodic pull never comes during this test: only a miss can teach the gateway a new site
      syncIntervalMs: 600_000,
      routerEndpoint: (siteId) => {
        const r = routers.get(siteId);
        return r ? { host: r.host, port: r.port } : { host: '127.0.0.1', port: 1 };
      },
    });
    await gw.app.listen(gwPort, '127.0.0.1');
  });

  afterAll(async () => {
    await gw?.close();
    for (const r of routers.values()) await r.stop();
    redis?.disconnect();
    await cp?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const fake = (): FakeOpenVpnServer => gw.runtime.fake as FakeOpenVpnServer;
  const site = (id: string, path: string) =>
    cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${id}/${path}`, { token: cp.token });

  async function metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${gwPort}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  }

  /** The value of one series (`name` with at least these labels; the registry adds `app`), 0 when absent. */
  function sample(text: string, name: string, labels: Record<string, string>): number {
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`${name}{`) && want.every((w) => l.slice(0, l.indexOf('}')).includes(w)));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  }

  it('admits a site created after the gateway started on its first tunnel attempt', async () => {
    const s = await cp.addSite('fresh-1');
    expect(gw.directory.get(s.id)).toBeUndefined(); // no periodic pull since it was created
    const started = Date.now();
    const out = await fake().connectTunnel({ username: s.user, password: s.password, ip: '198.51.100.21' }).outcome;
    expect(out).toEqual({ outcome: 'authorized', config: [`ifconfig-push ${s.address} 255.192.0.0`] });
    // answered by the pull, not left to openvpn's hand window (30 s here); with room for a loaded machine
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(gw.directory.missCounters.refreshes).toBe(1);
    await until(async () => (await site(s.id, 'tunnel')).body.online === true, 20_000, 'fresh site online');
  });

  it('admits new tunnel credentials on their first attempt too', async () => {
    const s = await cp.addSite('fresh-2');
    expect(
      (await fake().connectTunnel({ username: s.user, password: s.password, ip: '198.51.100.22' }).outcome).outcome,
    ).toBe('authorized');
    const again = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/sites/${s.id}/tunnel/credentials`, {
      token: cp.token,
    });
    expect(again.status).toBe(201);
    const out = await fake().connectTunnel({
      username: s.user,
      password: again.body.password as string,
      ip: '198.51.100.23',
    }).outcome;
    expect(out.outcome).toBe('authorized');
  });

  it('an unknown site is still refused, and repeated attempts do not each pull from the control plane', async () => {
    const user = siteIdToTunnelUser(randomUUID());
    const before = { ...gw.directory.missCounters };
    const first = await fake().connectTunnel({ username: user, password: 'x'.repeat(32), ip: '203.0.113.40' }).outcome;
    expect(first).toMatchObject({ outcome: 'denied', reason: 'unknown-site' });
    const second = await fake().connectTunnel({ username: user, password: 'x'.repeat(32), ip: '203.0.113.41' }).outcome;
    expect(second).toMatchObject({ outcome: 'denied', reason: 'unknown-site' });
    expect(gw.directory.missCounters.refreshes).toBe(before.refreshes + 1);
    expect(gw.directory.missCounters.negativeCached).toBe(before.negativeCached + 1);
  });

  /**
   * A router's connect, retried as a real ovpn-client retries (admission on the first attempt is
   * what the tests above prove; this one is about the relay's metrics). With the fake openvpn no
   * drain ever refuses (its runtime never restarts): a refusal here means the miss pull did not
   * bring the new site, so each one is reported with the directory's state, and 20 s of them fail.
   */
  async function connectAuthorized(who: { username: string; password: string; ip: string }): Promise<void> {
    const end = Date.now() + 20_000;
    const refusals: string[] = [];
    for (;;) {
      const out = await fake().connectTunnel(who).outcome;
      if (out.outcome === 'authorized') break;
      const d = gw.directory;
      refusals.push(
        `${JSON.stringify(out)} (misses ${JSON.stringify(d.missCounters)}, last pull ${d.lastSyncAt?.toISOString() ?? 'never'}, sync error ${d.lastSyncError ?? 'none'})`,
      );
      if (Date.now() > end) throw new Error(`still refused after 20 s:\n${refusals.join('\n')}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    if (refusals.length)
      console.warn(`[gateway-link] ${who.ip} admitted after ${refusals.length} refusal(s):\n${refusals.join('\n')}`);
  }

  it('counts relayed calls on /metrics by command class and outcome, with a latency histogram', async () => {
    const s = await cp.addSite('metrics-1');
    routers.set(
      s.id,
      await startRouter({
        identity: 'router-m',
        users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }],
      }),
    );
    await connectAuthorized({ username: s.user, password: s.password, ip: '198.51.100.30' });
    await until(async () => (await site(s.id, 'tunnel')).body.online === true, 20_000, 'site online');
    const before = await metrics();
    expect(before).toContain('# TYPE gateway_relay_calls_total counter');
    expect(before).toContain('# TYPE gateway_relay_call_duration_seconds histogram');
    expect(before).toMatch(/^gateway_relay_calls_total\{[^}]*class="write"[^}]*\} 0$/m); // every class from the start
    const okRead = { class: 'read', outcome: 'ok' };
    const n = sample(before, 'gateway_relay_calls_total', okRead);

    const id = await site(s.id, 'live/identity');
    expect(id.status).toBe(200);
    expect(id.body).toEqual({ name: 'router-m' });
    const after = await metrics();
    expect(sample(after, 'gateway_relay_calls_total', okRead)).toBe(n + 1);
    expect(sample(after, 'gateway_relay_call_duration_seconds_count', { class: 'read' })).toBeGreaterThanOrEqual(n + 1);

    // a site whose tunnel is up but whose router does not answer: an error, counted by code
    const dead = await cp.addSite('metrics-dead');
    await connectAuthorized({ username: dead.user, password: dead.password, ip: '198.51.100.31' });
    await until(async () => (await site(dead.id, 'tunnel')).body.online === true, 20_000, 'dead site online');
    const failed = await site(dead.id, 'live/identity');
    expect(failed.status).toBe(503);
    expect(failed.body.error.details[0]).toEqual({ path: 'reason', message: 'router_unreachable' });
    const end = await metrics();
    expect(sample(end, 'gateway_relay_errors_total', { class: 'read', code: 'router_unreachable' })).toBe(1);
    expect(sample(end, 'gateway_relay_calls_total', { class: 'read', outcome: 'router_unreachable' })).toBe(1);
  }, 90_000);
});
