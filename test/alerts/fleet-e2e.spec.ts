/**
 * Issue 20's must-show, end to end on the real path: a simulated router's tunnel goes down
 * at a real gateway (fake openvpn management server), the gateway reports the disconnect, the
 * api marks the site offline (the outbox trigger writes `site.offline`), and the worker's
 * alert dispatcher raises ONE alert after the rule's duration, delivers it once to each of
 * two webhook channels (HTTP receivers on loopback, allowed as OUTBOUND_ALLOW_NETWORKS would),
 * and resolves it once when the tunnel comes back. During the site's maintenance window the
 * same outage sends nothing (the alert is recorded, muted).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadGatewayConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import type { FakeOpenVpnServer, FakeTunnel } from '@backplane/openvpn';
import { RealtimePublisher, realtimeKeys, replaySince } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { AddressPolicy, AlertDispatcher, alertChangePublisher, SafeHttpClient } from '../../apps/worker/src/alerts';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from '../gateway/control-plane';
import { startReceiver, TEST_POLICY, until, type Receiver } from './fixture';

let cp: ControlPlane;
let gw: Gateway;
let redis: Redis;
let dispatcher: AlertDispatcher;
let site: TestSite;
let ruleId: string;
let tunnel: FakeTunnel | undefined;
const rx: Receiver[] = [];
let dataDir = '';

const api = (method: string, path: string, body?: unknown) =>
  cp.h.call(method, `/api/v1/tenants/${cp.tenantId}${path}`, {
    token: cp.token,
    ...(body !== undefined ? { body } : {}),
  });
const online = async () => ((await api('GET', `/sites/${site.id}`)).body.status as { online: boolean }).online;
const fake = () => gw.runtime.fake as FakeOpenVpnServer;

async function up(): Promise<void> {
  tunnel = fake().connectTunnel({ username: site.user, password: site.password, ip: '198.51.100.9' });
  expect((await tunnel.outcome).outcome).toBe('authorized');
  await until(online, 10_000, 'site online');
}
async function down(): Promise<void> {
  fake().disconnectTunnel(tunnel!.cid);
  await until(async () => !(await online()), 10_000, 'site offline');
}
const idle = async () =>
  (
    await cp.h.ds.query<unknown[]>(`SELECT 1 FROM outbox_events WHERE processed_at IS NULL
       UNION ALL SELECT 1 FROM deliveries WHERE state IN ('pending', 'delivering')`)
  ).length === 0;
const notices = (r: Receiver) =>
  r.requests.map((q) => JSON.parse(q.body) as { type: string; data: { alertId?: string } });

beforeAll(async () => {
  const key = randomBytes(32);
  cp = await startControlPlane('127.0.0.1', { ENCRYPTION_KEYS: `test:${key.toString('base64')}` });
  redis = new Redis(testSettings().redisUrl);
  dataDir = mkdtempSync(join(tmpdir(), 'bp-alert-e2e-'));
  gw = await startGateway({
    config: loadGatewayConfig({
      REDIS_URL: testSettings().redisUrl,
      DATA_DIR: dataDir,
      GATEWAY_API_URL: cp.url,
      GATEWAY_OPENVPN: 'fake',
      GATEWAY_PORT: String(await freePort()),
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-alerts',
    }),
    logger: createLogger({
      app: 'gw-alerts',
      level: 'warn',
      destination: new Writable({ write: (_c, _e, cb) => cb() }),
    }),
    redis,
    registry: createMetricsRegistry('gateway'),
    syncIntervalMs: 300,
  });
  site = await cp.addSite('Harbour');
  for (let i = 0; i < 2; i++) {
    const r = await startReceiver();
    rx.push(r);
    const ch = await api('POST', '/channels', { kind: 'webhook', name: `hook-${i}`, url: `${r.url}/hook` });
    expect(ch.status).toBe(201);
  }
  const rules = (await api('GET', '/alert-rules')).body.items as { id: string; defaultKey: string | null }[];
  ruleId = rules.find((r) => r.defaultKey === 'site-offline')!.id;
  expect((await api('PATCH', `/alert-rules/${ruleId}`, { durationSeconds: 2 })).status).toBe(200);
  dispatcher = new AlertDispatcher(
    {
      db: cp.h.db,
      keyring: new Keyring([{ id: 'test', key }]),
      logger: createLogger({ app: 'alerts-e2e', level: 'warn' }),
      onAlertChange: alertChangePublisher(
        new RealtimePublisher({ redis: cp.h.redis, prefix: cp.h.prefix }),
        createLogger({ app: 'alerts-e2e', level: 'warn' }),
      ),
      http: new SafeHttpClient({ policy: new AddressPolicy(['127.0.0.0/8']), timeoutMs: 2000 }),
      mailer: null,
      mailFrom: 'Backplane <alerts@backplane.test>',
      telemetryEverySeconds: 0,
    },
    { pollMs: 50, concurrency: 8, leaseMs: 5000, policy: TEST_POLICY },
  );
  dispatcher.start();
  await up();
  await until(idle, 10_000, 'idle');
}, 90_000);

afterAll(async () => {
  await dispatcher?.stop();
  await gw?.close().catch(() => undefined);
  for (const r of rx) await r.close();
  redis?.disconnect();
  await cp?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('site offline in the simulated fleet → one alert → delivered once per channel → resolved', () => {
  it('fires after the duration, once per channel; resolves once when the tunnel is back', async () => {
    const before = rx.map((r) => r.requests.length);
    const t0 = Date.now();
    await down();
    const alert = await until(
      async () => {
        const l = await api('GET', `/alerts?state=open&siteId=${site.id}&ruleId=${ruleId}`);
        return (l.body.items as { id: string; state: string }[])[0];
      },
      5000,
      'alert opened',
    );
    for (const r of rx)
      await until(
        () => notices(r).find((n) => n.type === 'alert.firing' && n.data.alertId === alert.id),
        10_000,
        'firing delivered',
      );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    await up();
    for (const r of rx)
      await until(
        () => notices(r).find((n) => n.type === 'alert.resolved' && n.data.alertId === alert.id),
        10_000,
        'resolved delivered',
      );
    await until(idle, 10_000, 'idle');
    await new Promise((r) => setTimeout(r, 500));
    expect((await api('GET', `/alerts/${alert.id}`)).body.state).toBe('resolved');
    for (const [i, r] of rx.entries()) {
      const mine = notices(r)
        .slice(before[i])
        .filter((n) => n.type.startsWith('alert.'));
      expect(mine.map((n) => `${n.type}:${n.data.alertId}`)).toEqual([
        `alert.firing:${alert.id}`,
        `alert.resolved:${alert.id}`,
      ]);
    }
    const all = await api('GET', `/alerts?siteId=${site.id}&ruleId=${ruleId}`);
    expect(all.body.items).toHaveLength(1);
    // The portal follows it live: sequenced `alert.changed` events, pending → firing → resolved.
    const r = await replaySince(redis, realtimeKeys(cp.h.prefix), cp.tenantId, 0);
    if (r.kind !== 'events') throw new Error('backlog lost');
    const changes = r.events.flatMap((e) =>
      e.type === 'alert.changed' && e.data.alertId === alert.id ? [`${e.data.state}:${e.data.siteId}`] : [],
    );
    expect(changes).toEqual([`pending:${site.id}`, `firing:${site.id}`, `resolved:${site.id}`]);
  }, 60_000);

  it('during the site maintenance window the same outage sends nothing (alert recorded, muted)', async () => {
    const win = await api('POST', '/maintenance-windows', {
      name: 'harbour works',
      siteId: site.id,
      days: [1, 2, 3, 4, 5, 6, 7],
      start: '00:00',
      durationMinutes: 1440,
    });
    expect(win.status).toBe(201);
    const before = rx.map((r) => r.requests.length);
    await down();
    const muted = await until(
      async () => {
        const l = await api('GET', `/alerts?state=firing&siteId=${site.id}&ruleId=${ruleId}`);
        return (l.body.items as { id: string; silencedUntil: string | null }[])[0];
      },
      10_000,
      'muted alert firing',
    );
    expect(muted.silencedUntil).not.toBeNull();
    await up();
    await until(async () => (await api('GET', `/alerts/${muted.id}`)).body.state === 'resolved', 10_000, 'resolved');
    await until(idle, 10_000, 'idle');
    await new Promise((r) => setTimeout(r, 500));
    expect(rx.map((r) => r.requests.length)).toEqual(before);
  }, 60_000);
});
