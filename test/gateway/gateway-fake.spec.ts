import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadGatewayConfig } from '@backplane/config';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { addMember, login, PASSWORD } from '../api/harness';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from './control-plane';

/**
 * The gateway against the real control plane (api in-process, PostgreSQL, Redis), with
 * the fake openvpn management server standing in for openvpn and simulated routers on
 * loopback standing in for the far end of each tunnel.
 */

describe('gateway with the fake openvpn server', () => {
  let cp: ControlPlane;
  let gw: Gateway | undefined;
  let redis: Redis;
  let dataDir: string;
  const routers = new Map<string, SimRouter>();
  let a: TestSite;
  let b: TestSite;
  const logs: string[] = [];
  let gwPort = 0;

  async function gateway(env: Record<string, string> = {}, port = gwPort): Promise<Gateway> {
    const config = loadGatewayConfig({
      REDIS_URL: testSettings().redisUrl,
      DATA_DIR: dataDir,
      GATEWAY_API_URL: cp.url,
      GATEWAY_OPENVPN: 'fake',
      GATEWAY_PORT: String(gwPort),
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      ...env,
    });
    const logger = createLogger({
      app: 'gateway-test',
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _e, cb) {
          logs.push(chunk.toString());
          cb();
        },
      }),
    });
    const g = await startGateway({
      config,
      logger,
      redis,
      registry: createMetricsRegistry('gateway'),
      syncIntervalMs: 300,
      routerEndpoint: (siteId) => {
        const r = routers.get(siteId);
        return r ? { host: r.host, port: r.port } : { host: '127.0.0.1', port: 1 };
      },
    });
    await g.app.listen(port, '127.0.0.1');
    return g;
  }

  const fake = (): FakeOpenVpnServer => gw!.runtime.fake as FakeOpenVpnServer;

  beforeAll(async () => {
    cp = await startControlPlane();
    redis = new Redis(testSettings().redisUrl);
    dataDir = mkdtempSync(join(tmpdir(), 'bp-gw-fake-'));
    gwPort = await freePort();
    a = await cp.addSite('site-a');
    b = await cp.addSite('site-b');
    for (const [site, identity] of [
      [a, 'router-a'],
      [b, 'router-b'],
    ] as const) {
      routers.set(
        site.id,
        await startRouter({ identity, users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }] }),
      );
    }
    gw = await gateway({ GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(), GATEWAY_NAME: 'gw-fake' });
  });

  afterAll(async () => {
    await gw?.close();
    for (const r of routers.values()) await r.stop();
    redis?.disconnect();
    await cp?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const api = (method: string, path: string) =>
    cp.h.call(method, `/api/v1/tenants/${cp.tenantId}/sites/${path}`, { token: cp.token });

  it('admits a site with its secret and pushes its fixed address; registry and events follow', async () => {
    const t = fake().connectTunnel({ username: a.user, password: a.password, ip: '198.51.100.7' });
    const out = await t.outcome;
    expect(out).toEqual({ outcome: 'authorized', config: [`ifconfig-push ${a.address} 255.192.0.0`] });
    const tunnel = await until(
      async () => {
        const r = await api('GET', `${a.id}/tunnel`);
        return r.body.online ? (r.body as Record<string, unknown>) : undefined;
      },
      5000,
      'site a online',
    );
    expect(tunnel).toMatchObject({
      online: true,
      gatewayId: gw!.identity.gatewayId,
      sourceIp: '198.51.100.7',
      address: a.address,
    });
    const events = await until(
      async () => {
        const r = await api('GET', `${a.id}/tunnel/events`);
        return r.body.items.length >= 2 ? (r.body.items as { type: string }[]) : undefined;
      },
      5000,
      'events',
    );
    expect(events.map((e: { type: string }) => e.type).sort()).toEqual(['auth', 'connect']);
    const site = await api('GET', a.id);
    expect(site.body.status.online).toBe(true); // the site list and page show it too
  });

  it('relays live calls to the router behind the tunnel; offline sites get a stable error', async () => {
    const id = await api('GET', `${a.id}/live/identity`);
    expect(id.status).toBe(200);
    expect(id.body).toEqual({ name: 'router-a' });
    const ifs = await api('GET', `${a.id}/live/interfaces`);
    expect(ifs.status).toBe(200);
    expect(ifs.body.items.some((i: { name: string }) => i.name === 'ether1')).toBe(true);
    const res = await api('GET', `${a.id}/live/resources`);
    expect(res.body['board-name']).toBeTruthy();
    const offline = await api('GET', `${b.id}/live/identity`);
    expect(offline.status).toBe(503);
    expect(offline.body.error.details[0]).toEqual({ path: 'reason', message: 'site_offline' });
  });

  it('streams monitor-traffic as NDJSON until the caller hangs up, and the router command is cancelled', async () => {
    const abort = new AbortController();
    const res = await fetch(`${cp.url}/api/v1/tenants/${cp.tenantId}/sites/${a.id}/live/traffic?interface=ether1`, {
      headers: { authorization: `Bearer ${cp.token}` },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const reader = res.body!.getReader();
    let text = '';
    while (text.split('\n').length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    const rows = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    expect(rows[0]).toHaveProperty('rx-bits-per-second');
    abort.abort();
    expect(await gw!.relay.inFlight(a.id)).toBe(1);
    // hanging up cancels the command on the router; the pooled connection stays for the next call
    await until(async () => (await gw!.relay.inFlight(a.id)) === 0, 5000, 'stream cancelled on the router');
    expect(routers.get(a.id)!.connections).toBe(1);
    expect((await api('GET', `${a.id}/live/identity`)).body).toEqual({ name: 'router-a' });
  });

  it('reboot is for operators and above; viewers are refused', async () => {
    const member = await addMember(cp.h, cp.token, cp.tenantId, {
      email: 'viewer@gw.test',
      role: 'viewer',
      password: PASSWORD,
    });
    expect(member.status).toBe(201);
    const viewer = await login(cp.h, 'viewer@gw.test');
    const url = `/api/v1/tenants/${cp.tenantId}/sites/${a.id}/reboot`;
    expect((await cp.h.call('POST', url, { token: viewer })).status).toBe(403);
    expect(
      (await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${a.id}/live/identity`, { token: viewer })).status,
    ).toBe(200);
    const r = await cp.h.call('POST', url, { token: cp.token });
    expect(r.status).toBe(202);
    // the router is really rebooting: its API refuses for a moment, then answers again
    await until(
      async () => (await api('GET', `${a.id}/live/identity`)).status === 503,
      5000,
      'router unreachable while rebooting',
    );
    await until(async () => (await api('GET', `${a.id}/live/identity`)).status === 200, 15_000, 'router back');
  });

  it('refuses a wrong secret and unknown users, records the attempt, and rate-limits the source', async () => {
    const bad = await fake().connectTunnel({ username: b.user, password: 'wrong', ip: '203.0.113.9' }).outcome;
    expect(bad).toMatchObject({ outcome: 'denied', reason: 'bad-secret', clientReason: 'authentication failed' });
    const events = await until(
      async () => {
        const r = await api('GET', `${b.id}/tunnel/events`);
        return r.body.items.length ? (r.body.items as Record<string, unknown>[]) : undefined;
      },
      5000,
      'denied event',
    );
    expect(events[0]).toMatchObject({ type: 'auth', accepted: false, reason: 'bad-secret', sourceIp: '203.0.113.9' });
    for (let i = 0; i < 12; i++)
      await fake().connectTunnel({ username: 'nonsense', password: 'x', ip: '203.0.113.66' }).outcome;
    // over the limit the right secret is refused too, from that source only
    const limited = await fake().connectTunnel({ username: b.user, password: b.password, ip: '203.0.113.66' }).outcome;
    expect(limited).toMatchObject({ outcome: 'denied', reason: 'rate-limited' });
    const fine = await fake().connectTunnel({ username: b.user, password: b.password, ip: '203.0.113.10' }).outcome;
    expect(fine.outcome).toBe('authorized');
  });

  it('marks a site offline when its tunnel goes away', async () => {
    const t = [...fake().tunnels.values()].find((x) => x.username === b.user && x.state === 'authorized')!;
    fake().disconnectTunnel(t.cid);
    await until(async () => !(await api('GET', `${b.id}/tunnel`)).body.online, 5000, 'site b offline');
    const events = (await api('GET', `${b.id}/tunnel/events`)).body.items;
    await until(
      async () => (await api('GET', `${b.id}/tunnel/events`)).body.items[0]?.type === 'disconnect',
      5000,
      'disconnect event',
    );
    expect(events.length).toBeGreaterThan(0);
  });

  it('after the management link breaks: known tunnels are kept, a CONNECT lost meanwhile is killed so it redials', async () => {
    const reattached = new Promise<void>((r) => gw!.runtime.management.on('ready', () => r()));
    fake().dropManagement();
    // dials while nobody listens: its CONNECT goes to nobody, like real openvpn
    const lost = fake().connectTunnel({ username: b.user, password: b.password, ip: '198.51.100.50' });
    await reattached;
    expect(await lost.outcome).toEqual({ outcome: 'disconnected' }); // killed at re-attach, not left to time out
    expect(gw!.runtime.management.stats.stragglersKilled).toBeGreaterThanOrEqual(1);
    expect((await api('GET', `${a.id}/tunnel`)).body.online).toBe(true);
    const again = await fake().connectTunnel({ username: b.user, password: b.password, ip: '198.51.100.50' }).outcome;
    expect(again.outcome).toBe('authorized');
  });

  it('refuses a deleted site after the next sync', async () => {
    const c = await cp.addSite('site-c');
    await until(() => gw!.directory.get(c.id), 5000, 'site c synced');
    expect(
      (await cp.h.call('DELETE', `/api/v1/tenants/${cp.tenantId}/sites/${c.id}`, { token: cp.token })).status,
    ).toBe(204);
    await until(() => gw!.directory.get(c.id)?.active === false, 5000, 'site c inactive');
    const out = await fake().connectTunnel({ username: c.user, password: c.password, ip: '198.51.100.8' }).outcome;
    expect(out).toMatchObject({ outcome: 'denied', reason: 'site-disabled' });
  });

  it('a second gateway in the region takes over a site that moves to it; the old one cannot clear it', async () => {
    const dir2 = mkdtempSync(join(tmpdir(), 'bp-gw-fake2-'));
    const port2 = await freePort();
    const gw2 = await gateway(
      {
        GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
        GATEWAY_NAME: 'gw-fake-2',
        DATA_DIR: dir2,
        GATEWAY_PORT: String(port2),
      },
      port2,
    );
    try {
      const onFirst = [...fake().tunnels.values()].find((x) => x.username === a.user && x.state === 'authorized')!;
      const moved = await (gw2.runtime.fake as FakeOpenVpnServer).connectTunnel({
        username: a.user,
        password: a.password,
        ip: '198.51.100.99',
      }).outcome;
      expect(moved.outcome).toBe('authorized');
      await until(
        async () => (await api('GET', `${a.id}/tunnel`)).body.gatewayId === gw2.identity.gatewayId,
        5000,
        'registry points at gateway 2',
      );
      fake().disconnectTunnel(onFirst.cid); // the old tunnel times out on gateway 1
      await new Promise((r) => setTimeout(r, 500));
      const rec = (await api('GET', `${a.id}/tunnel`)).body;
      expect(rec).toMatchObject({ online: true, gatewayId: gw2.identity.gatewayId, sourceIp: '198.51.100.99' });
      expect((await api('GET', `${a.id}/live/identity`)).body).toEqual({ name: 'router-a' }); // relayed by gateway 2
    } finally {
      await gw2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('keeps serving known sites from the 0600 cache file while the control plane is down, across a gateway restart', async () => {
    const file = join(dataDir, 'gateway', 'sites.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await cp.stop();
    await gw!.close();
    gw = await gateway();
    expect(logs.join('')).toMatch(/site cache loaded/);
    const out = await fake().connectTunnel({ username: a.user, password: a.password, ip: '198.51.100.7' }).outcome;
    expect(out.outcome).toBe('authorized');
    const bad = await fake().connectTunnel({ username: a.user, password: `${a.password}x`, ip: '198.51.100.7' })
      .outcome;
    expect(bad.outcome).toBe('denied');
    expect(gw.outbox.pending).toBeGreaterThan(0); // events wait for the control plane
    expect(await redis.get(`${cp.h.prefix}tunnel:${a.id}`)).toContain(gw.identity.gatewayId);
  });
});
