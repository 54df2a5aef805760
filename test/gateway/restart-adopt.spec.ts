import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  NetnsLab,
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
 * openvpn outlives the gateway process (ADR 0062): 20 routers (real openvpn clients with
 * RouterOS-style settings, each in its own namespace) on a gateway PROCESS with a real
 * openvpn; the gateway is stopped with SIGTERM and started again, then killed with SIGKILL
 * and started again. No router's openvpn re-initialises (one "Initialization Sequence
 * Completed" each, no restart in its log), openvpn keeps its pid, the registry's
 * connectedSince does not move, and relayed calls answer before and after.
 */
const missing = realTunnelsMissing('test/gateway/restart-adopt.spec.ts');
const ROOT = resolve(__dirname, '../..');
const N = 20;

describe.skipIf(missing.length > 0)('gateway restarts keep every tunnel (real openvpn, namespaces)', () => {
  const lab = new NetnsLab('bpra');
  const octet = 100 + (parseInt(lab.id.slice(0, 2), 16) % 100);
  const HOST_IP = `10.214.${octet}.1`;
  const GW_UPLINK_IP = `10.214.${octet}.2`;
  const gwIp = (i: number) => `192.0.2.${4 * i + 1}`;
  const rtIp = (i: number) => `192.0.2.${4 * i + 2}`;
  let GW_NS = '';
  const RT_NS: string[] = [];
  let cp: ControlPlane;
  let redis: Redis;
  let fwd: TcpForward | undefined;
  let dir: string;
  let gateway: Proc | undefined;
  const vpn: Proc[] = [];
  const sites: TestSite[] = [];
  let gatewayEnv: Record<string, string>;

  const startGateway = (): Proc =>
    lab.run(GW_NS, [process.execPath, 'dist/apps/gateway/src/main.js'], { env: gatewayEnv, cwd: ROOT });
  const waitListening = async (p: Proc): Promise<void> => {
    await until(() => p.log.some((l) => l.includes('gateway listening')), 60_000, 'gateway to start').catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\n${p.log.slice(-30).join('\n')}`);
      },
    );
  };
  const openvpnPid = (): number => Number(readFileSync(join(dir, 'data/gateway/openvpn/openvpn.pid'), 'utf8').trim());
  const alive = (pid: number): boolean => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'openvpn';
    } catch {
      return false;
    }
  };
  const registry = async (siteId: string) => {
    const raw = await redis.get(`${cp.h.prefix}tunnel:${siteId}`);
    return raw ? (JSON.parse(raw) as { gatewayId: string; connectedSince: string; updatedAt: string }) : undefined;
  };
  const api = (method: string, path: string) =>
    cp.h.call(method, `/api/v1/tenants/${cp.tenantId}/sites/${path}`, { token: cp.token });
  const identity = (i: number) =>
    until(
      async () => {
        const r = await api('GET', `${sites[i]!.id}/live/identity`);
        return r.status === 200 ? (r.body as { name: string }) : undefined;
      },
      30_000,
      `identity of router ${i}`,
    );
  /** How often each router's openvpn (re)initialised, and any restart it logged. */
  const initialisations = () => vpn.map((p) => p.log.filter((l) => l.includes('Initialization Sequence Completed')).length);
  const resets = () =>
    vpn.flatMap((p, i) =>
      p.log.filter((l) => /SIGUSR1|SIGHUP|Connection reset|Restart pause/.test(l)).map((l) => `router ${i}: ${l}`),
    );

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    dir = mkdtempSync(join(tmpdir(), 'bp-gw-adopt-'));
    NetnsLab.sweepStale(lab.tag);
    GW_NS = lab.namespace('gw');
    lab.veth({ address: `${HOST_IP}/30` }, { ns: GW_NS, address: `${GW_UPLINK_IP}/30` });
    for (let i = 0; i < N; i++) {
      RT_NS.push(lab.namespace(`r${i}`));
      lab.veth({ ns: GW_NS, address: `${gwIp(i)}/30` }, { ns: RT_NS[i]!, address: `${rtIp(i)}/30` });
    }
    cp = await startControlPlane(HOST_IP);
    redis = new Redis(testSettings().redisUrl);
    fwd = await tcpForward(
      { host: HOST_IP },
      { host: '127.0.0.1', port: Number(new URL(testSettings().redisUrl).port || 6379) },
    );
    for (let i = 0; i < N; i++) sites.push(await cp.addSite(`adopt-site-${i}`));
    gatewayEnv = {
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATA_DIR: join(dir, 'data'),
      REDIS_URL: `redis://${HOST_IP}:${fwd.port}`,
      GATEWAY_API_URL: cp.url,
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-adopt',
      GATEWAY_HOST: GW_UPLINK_IP,
      GATEWAY_PORT: '3001',
      GATEWAY_OPENVPN: 'real',
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_REGISTRY_TTL: '15',
    };
    gateway = startGateway();
    await waitListening(gateway);
    // two routers answer the RouterOS API over their tunnels (relay checks)
    for (let i = 0; i < 2; i++)
      lab.simulator(RT_NS[i]!, {
        cli: join(ROOT, 'dist/apps/routeros-sim/src/cli.js'),
        identity: `router-${i}`,
        users: ['bp-api:router-secret-1:full'],
      });
    const caFile = join(dir, 'data', 'gateway', 'openvpn', 'ca.pem');
    for (let i = 0; i < N; i++) {
      const s = sites[i]!;
      const conf = routerOsClientConfig(
        dir,
        `router${i}`,
        { remote: gwIp(i), port: 8443, user: s.user, password: s.password, caFile },
        ['connect-retry 1 2'],
      );
      vpn.push(lab.run(RT_NS[i], ['openvpn', '--config', conf]));
    }
    await until(
      async () => (await Promise.all(sites.map((s) => registry(s.id)))).every(Boolean) || undefined,
      90_000,
      `all ${N} routers online`,
    );
  }, 180_000);

  afterAll(async () => {
    // this test owns the machine: the gateway's openvpn (left running on purpose) goes too
    await lab.close({ killMatching: dir });
    await fwd?.close();
    redis?.disconnect();
    await cp?.close().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('SIGTERM then SIGKILL of the gateway: 0 tunnel re-initialisations, same openvpn, same connectedSince, relay answers', async () => {
    const since = async () => Promise.all(sites.map(async (s) => (await registry(s.id))?.connectedSince));
    const before = await since();
    expect(before.every(Boolean)).toBe(true);
    expect(initialisations()).toEqual(Array.from({ length: N }, () => 1));
    expect(await identity(0)).toEqual({ name: 'router-0' });
    expect(await identity(1)).toEqual({ name: 'router-1' });
    const pid = openvpnPid();
    const tunnelBefore = (await api('GET', `${sites[0]!.id}/tunnel`)).body as { connectedSince: string };

    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const t0 = Date.now();
      await stop(gateway, signal);
      expect(alive(pid), `openvpn survives the gateway's ${signal}`).toBe(true);
      gateway = startGateway();
      await waitListening(gateway);
      expect(gateway.log.join('\n')).toContain('attaching to the running openvpn');
      // the new gateway adopted every tunnel: its registry records (rewritten after attach) keep their connectedSince
      const restartedAt = new Date().toISOString();
      await until(
        async () =>
          (await Promise.all(sites.map((s) => registry(s.id)))).every((r) => r && r.updatedAt >= restartedAt) ||
          undefined,
        30_000,
        'registry rewritten by the new gateway',
      );
      expect(await since()).toEqual(before);
      expect(await identity(0)).toEqual({ name: 'router-0' });
      expect(await identity(1)).toEqual({ name: 'router-1' });
      console.info(`[gateway-adopt] ${signal}: gateway back, ${N} tunnels adopted in ${Date.now() - t0} ms`);
    }
    expect(openvpnPid()).toBe(pid);
    expect(alive(pid)).toBe(true);
    expect(resets()).toEqual([]);
    expect(initialisations()).toEqual(Array.from({ length: N }, () => 1));
    const tunnelAfter = (await api('GET', `${sites[0]!.id}/tunnel`)).body as { connectedSince: string };
    expect(tunnelAfter.connectedSince).toBe(tunnelBefore.connectedSince);
  }, 240_000);
});
