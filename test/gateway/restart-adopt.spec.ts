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
 * connectedSince does not move, and relayed calls answer before and after. A deliberate
 * openvpn restart (a changed config) is the one thing that drops tunnels: it drains, says
 * so, reconnects every router exactly once, and a second one soon after is rate-limited.
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
  /** The gateway reaches the api and Redis only through these two: closing them is "the control plane is down". */
  let apiFwd: TcpForward | undefined;
  let apiFwdPort = 0;
  let redisFwdPort = 0;
  let dir: string;
  let gateway: Proc | undefined;
  const vpn: Proc[] = [];
  const sites: TestSite[] = [];
  let gatewayEnv: Record<string, string>;

  const startVpn = (i: number, extra: readonly string[] = []): Proc => {
    const s = sites[i]!;
    const caFile = join(dir, 'data', 'gateway', 'openvpn', 'ca.pem');
    const conf = routerOsClientConfig(
      dir,
      `router${i}`,
      { remote: gwIp(i), port: 8443, user: s.user, password: s.password, caFile },
      ['connect-retry 1 2', ...extra],
    );
    return lab.run(RT_NS[i], ['openvpn', '--config', conf]);
  };
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
  const initialisations = () =>
    vpn.map((p) => p.log.filter((l) => l.includes('Initialization Sequence Completed')).length);
  const RESET = /SIGUSR1|SIGHUP|Connection reset|Restart pause/;
  const resets = () => vpn.flatMap((p, i) => p.log.filter((l) => RESET.test(l)).map((l) => `router ${i}: ${l}`));
  const resetCounts = () => vpn.map((p) => p.log.filter((l) => RESET.test(l)).length);
  /** The restarts routers (all, or these) logged since `counts` ({@link resetCounts}) was taken. */
  const resetsSince = (counts: readonly number[], only: readonly number[] = vpn.map((_, i) => i)) =>
    only.flatMap((i) =>
      vpn[i]!.log.filter((l) => RESET.test(l))
        .slice(counts[i])
        .map((l) => `router ${i}: ${l}`),
    );
  /** Every router's openvpn is up now: its last initialisation comes after its last restart, if any. */
  const everyRouterUp = () =>
    vpn.every((p) => {
      const lastInit = p.log.findLastIndex((l) => l.includes('Initialization Sequence Completed'));
      return lastInit >= 0 && lastInit > p.log.findLastIndex((l) => RESET.test(l));
    });

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
    redisFwdPort = fwd.port;
    apiFwd = await tcpForward({ host: HOST_IP }, { host: HOST_IP, port: Number(new URL(cp.url).port) });
    apiFwdPort = apiFwd.port;
    gatewayEnv = {
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATA_DIR: join(dir, 'data'),
      REDIS_URL: `redis://${HOST_IP}:${fwd.port}`,
      GATEWAY_API_URL: `http://${HOST_IP}:${apiFwdPort}`,
      GATEWAY_SYNC_INTERVAL: '2',
      GATEWAY_HEARTBEAT_INTERVAL: '5',
      GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
      GATEWAY_NAME: 'gw-adopt',
      GATEWAY_HOST: GW_UPLINK_IP,
      GATEWAY_PORT: '3001',
      GATEWAY_OPENVPN: 'real',
      GATEWAY_REDIS_PREFIX: cp.h.prefix,
      GATEWAY_REGISTRY_TTL: '15',
      // the outage test compresses renegotiation to seconds: the handshake window must stay below it
      GATEWAY_OPENVPN_HAND_WINDOW: '8',
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
    for (let i = 0; i < N; i++) vpn.push(startVpn(i));
    await until(
      async () => (await Promise.all(sites.map((s) => registry(s.id)))).every(Boolean) || undefined,
      90_000,
      `all ${N} routers online`,
    );
    // the gateway registers a tunnel at client-connect, before the router's openvpn has applied the
    // pushed options and logged its "Initialization Sequence Completed": wait for that line too
    // (after any restart a router's first attempt may have logged on a loaded machine)
    await until(() => everyRouterUp() || undefined, 30_000, `all ${N} routers initialised`);
    console.info(
      `[gateway-adopt] routers up: initialisations ${initialisations().join(',')}; ${resets().length} restarts at start`,
    );
  }, 180_000);

  afterAll(async () => {
    // this test owns the machine: the gateway's openvpn (left running on purpose) goes too
    await lab.close({ killMatching: dir });
    await fwd?.close();
    await apiFwd?.close();
    redis?.disconnect();
    await cp?.close().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('SIGTERM then SIGKILL of the gateway: 0 tunnel re-initialisations, same openvpn, same connectedSince, relay answers', async () => {
    const since = async () => Promise.all(sites.map(async (s) => (await registry(s.id))?.connectedSince));
    const before = await since();
    expect(before.every(Boolean)).toBe(true);
    // counted from here: a router whose first attempt failed while the lab came up (a loaded machine)
    // logged that before the gateway restarts; what the restarts must not cause is a new one
    expect(everyRouterUp()).toBe(true);
    const initsBefore = initialisations();
    const resetsBefore = resetCounts();
    expect(await identity(0)).toEqual({ name: 'router-0' });
    expect(await identity(1)).toEqual({ name: 'router-1' });
    const pid = openvpnPid();
    const tunnelBefore = (await api('GET', `${sites[0]!.id}/tunnel`)).body as { connectedSince: string };

    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const t0 = Date.now();
      await stop(gateway, signal);
      expect(alive(pid), `openvpn survives the gateway's ${signal}`).toBe(true);
      // anything written from now on is the new gateway's (it may rewrite the registry before it listens)
      const restartedAt = new Date().toISOString();
      gateway = startGateway();
      await waitListening(gateway);
      expect(gateway.log.join('\n')).toContain('attaching to the running openvpn');
      // the new gateway adopted every tunnel: its registry records (rewritten after attach) keep their connectedSince
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
    expect(resetsSince(resetsBefore)).toEqual([]);
    expect(initialisations()).toEqual(initsBefore);
    const tunnelAfter = (await api('GET', `${sites[0]!.id}/tunnel`)).body as { connectedSince: string };
    expect(tunnelAfter.connectedSince).toBe(tunnelBefore.connectedSince);
  }, 240_000);

  it('control plane cut off for a compressed hour (renegotiations, a router redialling): 0 other tunnels drop, relay answers, RSS bounded, events delivered in order after', async () => {
    const RENEG = 20;
    const OUTAGE_MS = 50_000;
    // from here on the routers renegotiate TLS every 20 s (RouterOS and the server do it hourly): fresh clients
    for (let i = 0; i < N; i++) {
      await stop(vpn[i], 'SIGTERM');
      vpn[i] = startVpn(i, [`reneg-sec ${RENEG}`, 'hand-window 8']);
    }
    await until(() => everyRouterUp() || undefined, 90_000, 'every router connected again');
    await until(
      async () => (await Promise.all(sites.map((s) => registry(s.id)))).every(Boolean) || undefined,
      30_000,
      'every router registered',
    );
    const since = async () => Promise.all(sites.map(async (s) => (await registry(s.id))?.connectedSince));
    const before = await since();
    const { gatewayId } = JSON.parse(readFileSync(join(dir, 'data/gateway/identity.json'), 'utf8')) as {
      gatewayId: string;
    };
    const link = JSON.parse((await redis.get(`${cp.h.prefix}gateway:${gatewayId}`)) ?? '{}') as {
      url: string;
      token: string;
    };
    expect(link.url).toBeTruthy();
    // a relayed call straight to the gateway (what an api replica does; anything that can still reach it)
    // A call that fails or times out is a result (the assertion lists them all), not an
    // exception that would leave the control plane cut off for the tests after this one.
    const relay = async (i: number): Promise<string> => {
      const started = Date.now();
      try {
        const res = await fetch(`${link.url}/internal/v1/sites/${sites[i]!.id}/call`, {
          method: 'POST',
          headers: { authorization: `Bearer ${link.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            credentials: { username: 'bp-api', password: 'router-secret-1' },
            command: '/system/identity/print',
            timeoutMs: 25_000,
          }),
          // a loaded machine (CI beside other work) and a TLS renegotiation in the tunnel can
          // hold one call for seconds; the promise is that it is answered
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json()) as { rows?: { name?: string }[] };
        return `${res.status} ${body.rows?.[0]?.name ?? JSON.stringify(body)}`;
      } catch (err) {
        return `error after ${Date.now() - started} ms: ${String(err)}`;
      }
    };
    for (const i of [0, 1])
      await until(async () => (await relay(i)) === `200 router-${i}` || undefined, 30_000, `relay to router ${i}`);
    const gwPid = gateway!.child.pid!;
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gwPid}/status`, 'utf8'))?.[1]) * 1024;
    const rssBefore = rss();
    const initsBefore = initialisations();
    const resetsBefore = resetCounts();
    const logFrom = gateway!.log.length;

    // down: the gateway reaches neither the api nor Redis (the in-process api stays for inspection)
    const cutAt = new Date();
    await apiFwd!.close();
    await fwd!.close();
    const relayResults: string[] = [];
    let maxRss = rssBefore;
    const t0 = Date.now();
    const LAST = N - 1;
    let redialled = false;
    const restore = async () => {
      apiFwd = await tcpForward(
        { host: HOST_IP, port: apiFwdPort },
        { host: HOST_IP, port: Number(new URL(cp.url).port) },
      );
      fwd = await tcpForward(
        { host: HOST_IP, port: redisFwdPort },
        { host: '127.0.0.1', port: Number(new URL(testSettings().redisUrl).port || 6379) },
      );
    };
    try {
      while (Date.now() - t0 < OUTAGE_MS) {
        await new Promise((r) => setTimeout(r, 5000));
        relayResults.push(await relay(0), await relay(1));
        maxRss = Math.max(maxRss, rss());
        if (!redialled && Date.now() - t0 > 15_000) {
          // one router drops and dials again: admitted from the gateway's cached credentials
          redialled = true;
          await stop(vpn[LAST], 'SIGKILL');
          const gwLog = () => gateway!.log.slice(logFrom).join('\n');
          await until(() => /"msg":"tunnel down"/.test(gwLog()) || undefined, 30_000, 'router down at the gateway');
          vpn[LAST] = startVpn(LAST, [`reneg-sec ${RENEG}`, 'hand-window 8']);
          await until(
            () => vpn[LAST]!.log.some((l) => l.includes('Initialization Sequence Completed')) || undefined,
            30_000,
            'the router back without the control plane',
          );
        }
      }
    } finally {
      // back (whatever happened above: the tests after this one need the control plane)
      await restore();
    }
    const outageLog = gateway!.log.slice(logFrom).join('\n');
    console.info(
      `[gateway-outage] ${OUTAGE_MS / 1000} s cut off (reneg every ${RENEG} s): RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> max ${(maxRss / 2 ** 20).toFixed(1)} MiB; relay: ${relayResults.length} calls`,
    );
    expect(
      relayResults.every((r) => /^200 router-[01]$/.test(r)),
      relayResults.join(', '),
    ).toBe(true);
    // every other router: still its first connection, renegotiated meanwhile (REAUTH answered from the cache)
    const others = Array.from({ length: N - 1 }, (_, i) => i);
    expect(resetsSince(resetsBefore, others)).toEqual([]);
    expect(others.map((i) => initialisations()[i])).toEqual(others.map((i) => initsBefore[i]));
    const renegs = others.map((i) => vpn[i]!.log.filter((l) => /soft reset|Renegotiat/i.test(l)).length);
    expect(
      renegs.every((n) => n >= 2),
      `renegotiations per router: ${renegs.join(',')}`,
    ).toBe(true);
    expect(outageLog).toMatch(/"msg":"tunnel up"/);
    expect(maxRss - rssBefore).toBeLessThan(64 * 2 ** 20);

    // events queued meanwhile arrive, in order; the registry is whole again
    const events = await until(
      async () => {
        const r = await api('GET', `${sites[LAST]!.id}/tunnel/events`);
        const items = (r.body.items ?? []) as { type: string; at: string }[];
        const during = items.filter((e) => e.at >= cutAt.toISOString() && e.type !== 'auth');
        return during.length >= 2 ? during : undefined;
      },
      30_000,
      'events of the outage delivered',
    );
    // newest first: the reconnect after the disconnect
    expect(events.map((e) => e.type).slice(0, 2)).toEqual(['connect', 'disconnect']);
    await until(
      async () => (await Promise.all(sites.map((s) => registry(s.id)))).every(Boolean) || undefined,
      30_000,
      'registry whole again',
    );
    const after = await since();
    expect(after.slice(0, LAST)).toEqual(before.slice(0, LAST));
    expect(after[LAST]).not.toBe(before[LAST]);
  }, 300_000);

  it('a deliberate openvpn restart (config change) drains and says so: each router reconnects once, a second change within the interval is deferred', async () => {
    // long enough that step 2 comes within it on a loaded machine (step 1 may take most of a minute there)
    const MIN_INTERVAL = 60;
    const gwLog = (from: number) => gateway!.log.slice(from).join('\n');
    const allRegistered = () =>
      until(
        async () => (await Promise.all(sites.map((s) => registry(s.id)))).every(Boolean) || undefined,
        60_000,
        'every router registered again',
      );
    const everyRouterAt = (inits: number[], label: string) =>
      until(
        () => initialisations().every((n, i) => n >= inits[i]!) || undefined,
        60_000,
        `every router re-initialised (${label})`,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}: ${initialisations().join(',')}\n${gwLog(0).slice(-4000)}`);
      });
    // routers as in the first test (no 20 s renegotiation from the outage test): a renegotiation
    // falling in the gateway's restart window (longer than the hand window on a loaded machine)
    // would drop a router before the deliberate restart does, so it would count twice
    for (let i = 0; i < N; i++) {
      await stop(vpn[i], 'SIGTERM');
      vpn[i] = startVpn(i);
    }
    await until(() => everyRouterUp() || undefined, 90_000, 'every router connected again');
    await allRegistered();
    const pid = openvpnPid();
    const inits0 = initialisations();
    const startedAt = new Date().toISOString();

    // 1. the gateway comes back with a changed openvpn config: it attaches, then restarts openvpn on purpose
    await stop(gateway, 'SIGTERM');
    gatewayEnv = {
      ...gatewayEnv,
      GATEWAY_OPENVPN_KEEPALIVE: '9',
      GATEWAY_OPENVPN_RESTART_MIN_INTERVAL: String(MIN_INTERVAL),
      GATEWAY_OPENVPN_RESTART_DRAIN: '3',
    };
    gateway = startGateway();
    await waitListening(gateway);
    await until(() => /openvpn restarted \(config re-read\)/.test(gwLog(0)) || undefined, 60_000, 'the restart').catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\n${gwLog(0).slice(-4000)}`);
      },
    );
    const first = gwLog(0);
    const draining = first.split('\n').find((l) => l.includes('deliberate openvpn restart: draining'));
    expect(draining, 'the restart is logged with its reason and the tunnels it drops').toBeDefined();
    expect(JSON.parse(draining!)).toMatchObject({ reason: 'config generation changed', tunnels: N });
    expect(first).toContain('openvpn restart: drained');
    // the drain comes before the restart, the restart before tunnels are admitted again
    expect(first.indexOf('deliberate openvpn restart: draining')).toBeLessThan(
      first.indexOf('openvpn restart: drained'),
    );
    expect(first.indexOf('openvpn restart: drained')).toBeLessThan(first.indexOf('openvpn restarted'));
    await everyRouterAt(
      inits0.map((n) => n + 1),
      'first restart',
    );
    await allRegistered();
    // exactly once each, the same openvpn process (SIGHUP), the relay answers again
    expect(initialisations()).toEqual(inits0.map((n) => n + 1));
    expect(openvpnPid()).toBe(pid);
    expect(await identity(0)).toEqual({ name: 'router-0' });
    // the control plane is told why the tunnels dropped
    const events = await until(
      async () => {
        const r = await api('GET', `${sites[0]!.id}/tunnel/events`);
        const items = (r.body.items ?? []) as { type: string; at: string; reason: string | null }[];
        return items.find((e) => e.type === 'disconnect' && e.at >= startedAt);
      },
      30_000,
      'the restart disconnect event',
    );
    expect(events.reason).toBe('openvpn restart: config generation changed');

    // 2. another change within the interval: deferred (logged), no router drops until the interval has passed
    const inits1 = initialisations();
    await stop(gateway, 'SIGTERM');
    gatewayEnv = { ...gatewayEnv, GATEWAY_OPENVPN_KEEPALIVE: '11' };
    gateway = startGateway();
    await waitListening(gateway);
    const deferral = await until(
      () => gateway!.log.find((l) => l.includes('openvpn restart deferred (rate limit)')),
      30_000,
      'the deferral',
    );
    const deferredAt = Date.now();
    const { inMs } = JSON.parse(deferral) as { inMs: number };
    expect(inMs).toBeGreaterThan(0);
    // watch (up to 5 s) while the restart is still deferred: it runs inMs after it was logged
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(5000, inMs - 1000 - (Date.now() - deferredAt)))));
    expect(initialisations(), 'no router dropped while the restart is deferred').toEqual(inits1);
    await until(
      () => /openvpn restarted \(config re-read\)/.test(gwLog(0)) || undefined,
      MIN_INTERVAL * 1000 + 30_000,
      'the deferred restart',
    );
    await everyRouterAt(
      inits1.map((n) => n + 1),
      'deferred restart',
    );
    await allRegistered();
    expect(initialisations()).toEqual(inits1.map((n) => n + 1));
    expect(await identity(0)).toEqual({ name: 'router-0' });

    // 3. an operator's SIGHUP to the gateway (systemctl reload) asks for one too: rate-limited like any other, the gateway stays up
    const from = gateway.log.length;
    gateway.child.kill('SIGHUP');
    await until(
      () =>
        gateway!.log
          .slice(from)
          .some((l) => l.includes('openvpn restart deferred') && l.includes('operator request (SIGHUP)')) || undefined,
      15_000,
      'the SIGHUP restart request, deferred',
    );
    expect(gateway.child.exitCode).toBeNull();
  }, 300_000);
});
