import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  NetnsLab,
  pidsIn,
  stopProcess as stop,
  tcpForward,
  testSettings,
  until,
  type NsProcess as Proc,
  type TcpForward,
} from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realTunnelsMissing, routerOsClientConfig } from '../openvpn/helpers';
import { startControlPlane, type ControlPlane, type TestSite } from './control-plane';

/**
 * The whole path with the real thing: the gateway PROCESS (built JS) in its own network
 * namespace running a real openvpn 2.6 server; routers in their own namespaces, each a
 * RouterOS simulator plus an openvpn client with RouterOS-style settings (tcp-client,
 * AES-256-CBC, SHA1, user/password, CA only); the real api in this process. The gateway
 * reaches the api and Redis over a veth pair into the root namespace.
 */
const missing = realTunnelsMissing('test/gateway/netns-e2e.spec.ts');

const ROOT = resolve(__dirname, '../..');
const GW_IPS = ['192.0.2.1', '192.0.2.5'];
const RT_IPS = ['192.0.2.2', '192.0.2.6'];

describe.skipIf(missing.length > 0)('gateway end to end in network namespaces (real openvpn)', () => {
  const lab = new NetnsLab('bpgw');
  const octet = 100 + (parseInt(lab.id.slice(0, 2), 16) % 100);
  const HOST_IP = `10.213.${octet}.1`;
  const GW_UPLINK_IP = `10.213.${octet}.2`;
  let GW_NS = '';
  const RT_NS: string[] = [];
  let cp: ControlPlane;
  let redis: Redis;
  let fwd: TcpForward | undefined;
  let dir: string;
  let gateway: Proc | undefined;
  const sims: Proc[] = [];
  const vpn: (Proc | undefined)[] = [];
  const extra: Proc[] = [];
  const sites: TestSite[] = [];
  let gatewayEnv: Record<string, string>;

  function startGateway(): Proc {
    return lab.run(GW_NS, [process.execPath, 'dist/apps/gateway/src/main.js'], { env: gatewayEnv, cwd: ROOT });
  }

  /** The CA the gateway's openvpn serves with (the one routers import). */
  const caFile = () => join(dir, 'data', 'gateway', 'openvpn', 'ca.pem');

  function startVpn(i: number): Proc {
    const s = sites[i]!;
    const conf = routerOsClientConfig(
      dir,
      `router${i}`,
      {
        remote: GW_IPS[i]!,
        port: 8443,
        user: s.user,
        password: s.password,
        caFile: caFile(),
      },
      ['connect-retry 1 2'],
    );
    return lab.run(RT_NS[i], ['openvpn', '--config', conf]);
  }

  const registry = async (siteId: string) => {
    const raw = await redis.get(`${cp.h.prefix}tunnel:${siteId}`);
    return raw ? (JSON.parse(raw) as { gatewayId: string; address: string; connectedSince: string }) : undefined;
  };
  const tunnelAddress = (ns: string) =>
    /inet (100\.\d+\.\d+\.\d+)\/10/.exec(execFileSync('ip', ['-n', ns, '-4', '-o', 'addr'], { encoding: 'utf8' }))?.[1];
  const api = (method: string, path: string) =>
    cp.h.call(method, `/api/v1/tenants/${cp.tenantId}/sites/${path}`, { token: cp.token });

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    dir = mkdtempSync(join(tmpdir(), 'bp-gw-e2e-'));
    NetnsLab.sweepStale(lab.tag);
    GW_NS = lab.namespace('gw');
    // root <-> gateway uplink
    lab.veth({ address: `${HOST_IP}/30` }, { ns: GW_NS, address: `${GW_UPLINK_IP}/30` });
    // gateway <-> each router ("the internet")
    for (let i = 0; i < 2; i++) {
      RT_NS.push(lab.namespace(`r${i}`));
      lab.veth({ ns: GW_NS, address: `${GW_IPS[i]}/30` }, { ns: RT_NS[i]!, address: `${RT_IPS[i]}/30` });
    }

    cp = await startControlPlane(HOST_IP);
    redis = new Redis(testSettings().redisUrl);
    fwd = await tcpForward(
      { host: HOST_IP },
      { host: '127.0.0.1', port: Number(new URL(testSettings().redisUrl).port || 6379) },
    );
    for (let i = 0; i < 2; i++) sites.push(await cp.addSite(`e2e-site-${i}`));

    gatewayEnv = {
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATA_DIR: join(dir, 'data'),
      REDIS_URL: `redis://${HOST_IP}:${fwd.port}`,
      GATEWAY_API_URL: cp.url,
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-e2e',
      GATEWAY_HOST: GW_UPLINK_IP,
      GATEWAY_PORT: '3001',
      GATEWAY_OPENVPN: 'real',
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
    };
    gateway = startGateway();
    await until(() => gateway!.log.some((l) => l.includes('gateway listening')), 30_000, 'gateway to start').catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\n${gateway!.log.slice(-30).join('\n')}`);
      },
    );
    for (let i = 0; i < 2; i++) {
      sims.push(
        lab.simulator(RT_NS[i]!, {
          cli: join(ROOT, 'dist/apps/routeros-sim/src/cli.js'),
          identity: `router-${i}`,
          users: ['bp-api:router-secret-1:full'],
        }),
      );
    }
  }, 90_000);

  afterAll(async () => {
    // routers, simulators, the gateway, anything else still running from this test's
    // directory (e.g. an openvpn orphaned by a crash), then the namespaces
    await lab.close({ killMatching: dir });
    await fwd?.close();
    redis?.disconnect();
    await cp?.close().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('two routers come online with their fixed addresses and answer live calls over the tunnel', async () => {
    const t0 = Date.now();
    vpn[0] = startVpn(0);
    vpn[1] = startVpn(1);
    for (let i = 0; i < 2; i++) {
      const rec = await until(() => registry(sites[i]!.id), 30_000, `router ${i} online`);
      expect(rec.address).toBe(sites[i]!.address);
      // the router's openvpn sets its address once the push reply arrives, a moment after the gateway's auth
      await until(() => tunnelAddress(RT_NS[i]!) === sites[i]!.address, 5000, `router ${i} tunnel address`);
    }
    console.info(`[gateway-e2e] two routers online in ${Date.now() - t0} ms`);
    // the client logs its data channel once it has processed the push reply, which may be a
    // moment after the gateway registered it
    await until(() => vpn[0]!.log.some((l) => l.includes('Data Channel:')), 10_000, 'router 0 data channel');
    expect(vpn[0].log.join('\n')).toMatch(/Data Channel: cipher 'AES-256-CBC', auth 'SHA1'/);
    for (let i = 0; i < 2; i++) {
      const res = await until(
        async () => {
          const r = await api('GET', `${sites[i]!.id}/live/identity`);
          return r.status === 200 ? r : undefined;
        },
        10_000,
        `identity of router ${i}`,
      );
      expect(res.body).toEqual({ name: `router-${i}` });
    }
    const ifs = await api('GET', `${sites[0]!.id}/live/interfaces`);
    expect(ifs.status).toBe(200);
    expect(ifs.body.items.length).toBeGreaterThan(0);
    const tunnel = await api('GET', `${sites[0]!.id}/tunnel`);
    expect(tunnel.body).toMatchObject({ online: true, sourceIp: RT_IPS[0], address: sites[0]!.address });
  }, 60_000);

  it('refuses a router with a wrong secret and records the attempt', async () => {
    const conf = routerOsClientConfig(
      dir,
      'intruder',
      { remote: GW_IPS[1]!, port: 8443, user: sites[1]!.user, password: 'not-the-secret', caFile: caFile() },
      ['auth-retry none'],
    );
    const p = lab.run(RT_NS[1], ['openvpn', '--config', conf]);
    extra.push(p);
    await until(() => p.log.some((l) => l.includes('AUTH_FAILED')), 20_000, 'AUTH_FAILED at the intruder');
    const ev = await until(
      async () => {
        const r = await api('GET', `${sites[1]!.id}/tunnel/events`);
        return (
          r.body.items as { type: string; accepted: boolean | null; reason: string | null; sourceIp: string }[]
        ).find((e) => e.type === 'auth' && e.accepted === false);
      },
      10_000,
      'denied attempt in the event log',
    );
    expect(ev).toMatchObject({ reason: 'bad-secret', sourceIp: RT_IPS[1] });
    // the real router of that site is still online
    expect(await registry(sites[1]!.id)).toBeDefined();
  }, 40_000);

  it('marks a router offline within 60 s when its openvpn dies, and back online when it returns', async () => {
    const t0 = Date.now();
    await stop(vpn[1], 'SIGKILL');
    await until(async () => !(await registry(sites[1]!.id)), 60_000, 'router 1 offline');
    console.info(`[gateway-e2e] killed router openvpn -> offline in ${Date.now() - t0} ms`);
    const events = (await api('GET', `${sites[1]!.id}/tunnel/events`)).body.items as { type: string }[];
    await until(
      async () =>
        ((await api('GET', `${sites[1]!.id}/tunnel/events`)).body.items as { type: string }[])[0]?.type ===
        'disconnect',
      10_000,
      'disconnect event',
    );
    expect(events.length).toBeGreaterThan(0);
    expect((await api('GET', `${sites[1]!.id}/live/identity`)).body.error.details[0].message).toBe('site_offline');
    vpn[1] = startVpn(1);
    await until(() => registry(sites[1]!.id), 30_000, 'router 1 back');
  }, 100_000);

  it('loses no router when openvpn itself restarts', async () => {
    const ovpn = pidsIn(GW_NS).find((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'openvpn';
      } catch {
        return false;
      }
    });
    expect(ovpn).toBeDefined();
    const before = await Promise.all(sites.map((s) => registry(s.id)));
    const t0 = Date.now();
    process.kill(Number(ovpn), 'SIGKILL');
    for (let i = 0; i < 2; i++)
      await until(
        async () => {
          const r = await registry(sites[i]!.id);
          return r && r.connectedSince !== before[i]?.connectedSince ? r : undefined;
        },
        90_000,
        `router ${i} back after the openvpn restart`,
      );
    console.info(`[gateway-e2e] openvpn killed -> both routers back in ${Date.now() - t0} ms`);
    expect((await api('GET', `${sites[0]!.id}/live/identity`)).body).toEqual({ name: 'router-0' });
  }, 100_000);

  it('loses no router when the gateway process restarts', async () => {
    const t0 = Date.now();
    await stop(gateway);
    gateway = startGateway();
    await until(() => gateway!.log.some((l) => l.includes('gateway listening')), 30_000, 'gateway to restart');
    for (let i = 0; i < 2; i++) {
      await until(
        async () => {
          const r = await api('GET', `${sites[i]!.id}/live/identity`);
          return r.status === 200 ? r : undefined;
        },
        90_000,
        `router ${i} reachable again`,
      );
    }
    console.info(`[gateway-e2e] gateway restarted -> both routers reachable in ${Date.now() - t0} ms`);
  }, 120_000);

  it('with the control plane stopped, tunnels stay up and a known router reconnects from the verifier cache', async () => {
    await cp.stop();
    await new Promise((r) => setTimeout(r, 2000));
    expect(await registry(sites[0]!.id)).toBeDefined();
    const before = await registry(sites[1]!.id);
    await stop(vpn[1], 'SIGKILL');
    await until(async () => !(await registry(sites[1]!.id)), 60_000, 'router 1 offline');
    vpn[1] = startVpn(1);
    const after = await until(() => registry(sites[1]!.id), 60_000, 'router 1 back without the control plane');
    expect(after.connectedSince).not.toBe(before?.connectedSince);
    await until(() => tunnelAddress(RT_NS[1]!) === sites[1]!.address, 5000, 'router 1 tunnel address');
    expect(await registry(sites[0]!.id)).toBeDefined();
  }, 150_000);
});
