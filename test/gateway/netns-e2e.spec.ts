import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane, type TestSite } from './control-plane';

/**
 * The whole path with the real thing: the gateway PROCESS (built JS) in its own network
 * namespace running a real openvpn 2.6 server; routers in their own namespaces, each a
 * RouterOS simulator plus an openvpn client with RouterOS-style settings (tcp-client,
 * AES-256-CBC, SHA1, user/password, CA only); the real api in this process. The gateway
 * reaches the api and Redis over a veth pair into the root namespace.
 */
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const missing = [
  !isRoot && 'root',
  !existsSync('/dev/net/tun') && '/dev/net/tun',
  spawnSync('openvpn', ['--version']).status === null && 'openvpn',
  spawnSync('ip', ['-V']).status !== 0 && 'iproute2 (ip)',
].filter(Boolean);
if (missing.length) console.warn(`\n*** SKIPPING test/gateway/netns-e2e.spec.ts: needs ${missing.join(', ')} ***\n`);

const ROOT = resolve(__dirname, '../..');
const id = randomBytes(3).toString('hex');
const octet = 100 + (parseInt(id.slice(0, 2), 16) % 100);
const GW_NS = `bpgw${id}`;
const RT_NS = [`bpra${id}`, `bprb${id}`];
const HOST_VETH = [`bph${id}`, `bpH${id}`];
const HOST_IP = `10.213.${octet}.1`;
const GW_UPLINK_IP = `10.213.${octet}.2`;
const GW_SIDE = [`bpa${id}`, `bpb${id}`];
const RT_SIDE = [`bpA${id}`, `bpB${id}`];
const GW_IPS = ['192.0.2.1', '192.0.2.5'];
const RT_IPS = ['192.0.2.2', '192.0.2.6'];

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, ms: number, what: string) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Forwards a port on the root-namespace veth address to a loopback service (Redis). */
function forward(host: string, targetPort: number): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((c) => {
    const up = connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(c).add(up);
    c.pipe(up).pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  return new Promise((res) =>
    server.listen(0, host, () => res({ server, port: (server.address() as { port: number }).port })),
  );
}

interface Proc {
  child: ChildProcess;
  log: string[];
}

function run(ns: string, cmd: string[], env: Record<string, string> = {}): Proc {
  // `env K=V cmd`: the child inherits this environment plus the variables given
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const child = spawn('ip', ['netns', 'exec', ns, 'env', ...vars, ...cmd], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const onData = (d: Buffer) => {
    log.push(...d.toString().split('\n').filter(Boolean));
    if (log.length > 2000) log.splice(0, log.length - 2000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return { child, log };
}

async function stop(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  await new Promise<void>((res) => {
    const t = setTimeout(() => p.child.kill('SIGKILL'), 8000);
    p.child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    p.child.kill(signal);
  });
}

describe.skipIf(missing.length > 0)('gateway end to end in network namespaces (real openvpn)', () => {
  let cp: ControlPlane;
  let redis: Redis;
  let fwd: { server: Server; port: number } | undefined;
  let dir: string;
  let gateway: Proc | undefined;
  const sims: Proc[] = [];
  const vpn: (Proc | undefined)[] = [];
  const extra: Proc[] = [];
  const sites: TestSite[] = [];
  let gatewayEnv: Record<string, string>;

  function startGateway(): Proc {
    return run(GW_NS, [process.execPath, 'dist/apps/gateway/src/main.js'], gatewayEnv);
  }

  function clientConfig(name: string, serverIp: string, user: string, password: string, retry: string): string {
    writeFileSync(join(dir, `${name}.creds`), `${user}\n${password}\n`, { mode: 0o600 });
    const file = join(dir, `${name}.conf`);
    // What a RouterOS ovpn-client does: TCP, AES-256-CBC, SHA1, no cipher negotiation,
    // user/password, only the CA (no client certificate), no compression.
    writeFileSync(
      file,
      [
        'client',
        'dev tun',
        'proto tcp-client',
        `remote ${serverIp} 8443`,
        'nobind',
        'cipher AES-256-CBC',
        'data-ciphers AES-256-CBC',
        'auth SHA1',
        `auth-user-pass ${join(dir, `${name}.creds`)}`,
        `ca ${join(dir, 'data', 'pki', 'ca.pem')}`,
        'connect-retry 1 2',
        `auth-retry ${retry}`,
        'verb 3',
        '',
      ].join('\n'),
    );
    return file;
  }

  function startVpn(i: number): Proc {
    const s = sites[i]!;
    const conf = clientConfig(`router${i}`, GW_IPS[i]!, s.user, s.password, 'nointeract');
    return run(RT_NS[i]!, ['openvpn', '--config', conf]);
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
    ip('netns', 'add', GW_NS);
    for (const ns of RT_NS) ip('netns', 'add', ns);
    // root <-> gateway uplink
    ip('link', 'add', HOST_VETH[0]!, 'type', 'veth', 'peer', 'name', HOST_VETH[1]!);
    ip('link', 'set', HOST_VETH[1]!, 'netns', GW_NS);
    ip('addr', 'add', `${HOST_IP}/30`, 'dev', HOST_VETH[0]!);
    ip('link', 'set', HOST_VETH[0]!, 'up');
    ip('-n', GW_NS, 'addr', 'add', `${GW_UPLINK_IP}/30`, 'dev', HOST_VETH[1]!);
    ip('-n', GW_NS, 'link', 'set', HOST_VETH[1]!, 'up');
    ip('-n', GW_NS, 'link', 'set', 'lo', 'up');
    // gateway <-> each router ("the internet")
    for (let i = 0; i < 2; i++) {
      ip('link', 'add', GW_SIDE[i]!, 'type', 'veth', 'peer', 'name', RT_SIDE[i]!);
      ip('link', 'set', GW_SIDE[i]!, 'netns', GW_NS);
      ip('link', 'set', RT_SIDE[i]!, 'netns', RT_NS[i]!);
      ip('-n', GW_NS, 'addr', 'add', `${GW_IPS[i]}/30`, 'dev', GW_SIDE[i]!);
      ip('-n', RT_NS[i]!, 'addr', 'add', `${RT_IPS[i]}/30`, 'dev', RT_SIDE[i]!);
      ip('-n', GW_NS, 'link', 'set', GW_SIDE[i]!, 'up');
      ip('-n', RT_NS[i]!, 'link', 'set', RT_SIDE[i]!, 'up');
      ip('-n', RT_NS[i]!, 'link', 'set', 'lo', 'up');
    }

    cp = await startControlPlane(HOST_IP);
    redis = new Redis(testSettings().redisUrl);
    fwd = await forward(HOST_IP, Number(new URL(testSettings().redisUrl).port || 6379));
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
        run(RT_NS[i]!, [
          process.execPath,
          'dist/apps/routeros-sim/src/cli.js',
          '--host',
          '0.0.0.0',
          '--port',
          '8728',
          '--identity',
          `router-${i}`,
          '--user',
          'bp-api:router-secret-1:full',
          '--log-level',
          'warn',
        ]),
      );
    }
  }, 90_000);

  afterAll(async () => {
    for (const p of [...vpn, ...extra]) await stop(p);
    for (const p of sims) await stop(p);
    await stop(gateway);
    await new Promise<void>((r) => (fwd ? fwd.server.close(() => r()) : r()));
    redis?.disconnect();
    await cp?.close().catch(() => undefined);
    // Anything still running from this test's directory (e.g. an openvpn orphaned by a crash).
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (dir && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const ns of [GW_NS, ...RT_NS]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', HOST_VETH[0]!], { stdio: 'ignore' });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('two routers come online with their fixed addresses and answer live calls over the tunnel', async () => {
    const t0 = Date.now();
    vpn[0] = startVpn(0);
    vpn[1] = startVpn(1);
    for (let i = 0; i < 2; i++) {
      const rec = await until(() => registry(sites[i]!.id), 30_000, `router ${i} online`);
      expect(rec.address).toBe(sites[i]!.address);
      expect(tunnelAddress(RT_NS[i]!)).toBe(sites[i]!.address);
    }
    console.info(`[gateway-e2e] two routers online in ${Date.now() - t0} ms`);
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
    const conf = clientConfig('intruder', GW_IPS[1]!, sites[1]!.user, 'not-the-secret', 'none');
    const p = run(RT_NS[1]!, ['openvpn', '--config', conf]);
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
    const pids = execFileSync('ip', ['netns', 'pids', GW_NS], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const ovpn = pids.find((p) => {
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
    expect(tunnelAddress(RT_NS[1]!)).toBe(sites[1]!.address);
    expect(await registry(sites[0]!.id)).toBeDefined();
  }, 150_000);
});
