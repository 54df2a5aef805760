/* eslint-disable @typescript-eslint/no-unsafe-return -- api response bodies are untyped here and checked field by field */
/**
 * Onboarding and recreate-tunnel end to end with the real tunnel stack (the gateway
 * helper's namespace pattern, test/gateway/netns-e2e.spec.ts): the gateway PROCESS with a
 * real openvpn 2.6 server in its namespace; a fresh RouterOS simulator in a router
 * namespace; the real api in this process; a job worker (in-process JobRunner on the relay
 * channel, the same path as the api's live calls).
 *
 * The one-liner from the api is run by the simulator's own script interpreter (sent with
 * `/execute`, the test's stand-in for pasting into the terminal): it fetches the script from
 * the api over the network and imports it. The simulator has no OpenVPN of its own, so an
 * "ovpn-client driver" in this test starts a real openvpn client in the router namespace
 * with exactly the parameters the script configured on the simulator (connect-to, port,
 * user, password, cipher, auth) and restarts it whenever they change, as RouterOS does.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Keyring } from '@backplane/crypto';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { RouterOsClient } from '@backplane/routeros';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayChannel } from '../../apps/worker/src/jobs/channel';
import { JobRunner } from '../../apps/worker/src/jobs/runner';
import { bootstrap, startApi, type Harness } from '../api/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const missing = [
  !isRoot && 'root',
  !existsSync('/dev/net/tun') && '/dev/net/tun',
  spawnSync('openvpn', ['--version']).status === null && 'openvpn',
  spawnSync('ip', ['-V']).status !== 0 && 'iproute2 (ip)',
].filter(Boolean);
if (missing.length) console.warn(`\n*** SKIPPING test/onboarding/netns-e2e.spec.ts: needs ${missing.join(', ')} ***\n`);

const ROOT = resolve(__dirname, '../..');
const id = randomBytes(3).toString('hex');
const octet = 100 + (parseInt(id.slice(0, 2), 16) % 100);
const GW_NS = `bpog${id}`;
const RT_NS = `bpor${id}`;
const HOST_VETH = [`bpoh${id}`, `bpoH${id}`];
const HOST_IP = `10.214.${octet}.1`;
const GW_UPLINK_IP = `10.214.${octet}.2`;
const GW_SIDE = `bpoa${id}`;
const RT_SIDE = `bpoA${id}`;
const GW_IP = `198.18.${octet}.1`;
const RT_IP = `198.18.${octet}.2`;
const HOSTILE = 'Site "A" $(x); [/system reboot]\n;/user remove admin';

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

describe.skipIf(missing.length > 0)('onboarding + recreate tunnel end to end (real openvpn, namespaces)', () => {
  let h: Harness;
  let token: string;
  let tenantId: string;
  let redis: Redis;
  let fwd: { server: Server; port: number } | undefined;
  let dir: string;
  let gateway: Proc | undefined;
  let sim: Proc | undefined;
  let vpn: Proc | undefined;
  let vpnParams = '';
  let admin: RouterOsClient | undefined;
  let driver: NodeJS.Timeout | undefined;
  let runner: JobRunner | undefined;
  let siteId = '';
  const encKey = randomBytes(32);
  const verifierKey = randomBytes(32).toString('base64url');

  const api = (method: string, path: string, body?: unknown) =>
    h.call(method, `/api/v1/tenants/${tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) });
  const registry = async () => {
    const raw = await redis.get(`${h.prefix}tunnel:${siteId}`);
    return raw ? (JSON.parse(raw) as { connectedSince: string; address: string }) : undefined;
  };

  /** The ovpn-client driver: a real openvpn client with the simulator's ovpn-client settings. */
  async function drive(): Promise<void> {
    if (!admin) return;
    const rows = (await admin.print('/interface/ovpn-client')).filter((r) => r['name'] === siteId);
    const c = rows[0];
    const params = c
      ? JSON.stringify([c['connect-to'], c['port'], c['user'], c['password'], c['cipher'], c['auth'], c['disabled']])
      : '';
    if (params === vpnParams) return;
    vpnParams = params;
    await stop(vpn, 'SIGKILL');
    vpn = undefined;
    if (!c || c['disabled'] === 'true') return;
    const cipher = c['cipher']!.startsWith('aes256') ? 'AES-256-CBC' : 'AES-128-CBC';
    writeFileSync(join(dir, 'router.creds'), `${c['user']}\n${c['password']}\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'router.conf'),
      [
        'client',
        'dev tun',
        'proto tcp-client',
        `remote ${c['connect-to']} ${c['port']}`,
        'nobind',
        `cipher ${cipher}`,
        `data-ciphers ${cipher}`,
        `auth ${(c['auth'] ?? 'sha1').toUpperCase()}`,
        `auth-user-pass ${join(dir, 'router.creds')}`,
        `ca ${join(dir, 'data', 'pki', 'ca.pem')}`,
        'connect-retry 1 2',
        'auth-retry nointeract',
        'verb 3',
        '',
      ].join('\n'),
    );
    vpn = run(RT_NS, ['openvpn', '--config', join(dir, 'router.conf')]);
  }

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    dir = mkdtempSync(join(tmpdir(), 'bp-onb-e2e-'));
    ip('netns', 'add', GW_NS);
    ip('netns', 'add', RT_NS);
    ip('link', 'add', HOST_VETH[0]!, 'type', 'veth', 'peer', 'name', HOST_VETH[1]!);
    ip('link', 'set', HOST_VETH[1]!, 'netns', GW_NS);
    ip('addr', 'add', `${HOST_IP}/30`, 'dev', HOST_VETH[0]!);
    ip('link', 'set', HOST_VETH[0]!, 'up');
    ip('-n', GW_NS, 'addr', 'add', `${GW_UPLINK_IP}/30`, 'dev', HOST_VETH[1]!);
    ip('-n', GW_NS, 'link', 'set', HOST_VETH[1]!, 'up');
    ip('-n', GW_NS, 'link', 'set', 'lo', 'up');
    ip('link', 'add', GW_SIDE, 'type', 'veth', 'peer', 'name', RT_SIDE);
    ip('link', 'set', GW_SIDE, 'netns', GW_NS);
    ip('link', 'set', RT_SIDE, 'netns', RT_NS);
    ip('-n', GW_NS, 'addr', 'add', `${GW_IP}/30`, 'dev', GW_SIDE);
    ip('-n', RT_NS, 'addr', 'add', `${RT_IP}/30`, 'dev', RT_SIDE);
    ip('-n', GW_NS, 'link', 'set', GW_SIDE, 'up');
    ip('-n', RT_NS, 'link', 'set', RT_SIDE, 'up');
    ip('-n', RT_NS, 'link', 'set', 'lo', 'up');
    // The router reaches the controller (its "internet" path) through the gateway namespace.
    ip('-n', RT_NS, 'route', 'add', `${HOST_IP}/32`, 'via', GW_IP);
    execFileSync('ip', ['netns', 'exec', GW_NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    ip('route', 'add', `${RT_IP}/32`, 'via', GW_UPLINK_IP);

    const port = await new Promise<number>((res) => {
      const s = createServer();
      s.listen(0, HOST_IP, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
    });
    h = await startApi({
      TUNNEL_VERIFIER_KEY: verifierKey,
      ENCRYPTION_KEYS: `test:${encKey.toString('base64')}`,
      CONTROLLER_PUBLIC_URL: `http://${HOST_IP}:${port}`,
      ONBOARDING_CA_FILE: join(dir, 'data', 'pki', 'ca.pem'),
      POLL_INTERVAL: '5',
      DATA_DIR: join(dir, 'api'),
    });
    await h.app.listen(port, HOST_IP);
    const boot = await bootstrap(h);
    token = boot.token;
    tenantId = boot.tenantId;
    const region = await h.call('POST', '/api/v1/regions', {
      token,
      body: { slug: 'netns', name: 'Netns', publicHost: GW_IP, publicPort: 8443, latitude: 1, longitude: 1 },
    });
    expect(region.status).toBe(201);
    const et = await h.call('POST', `/api/v1/regions/${region.body.id}/enrollment-tokens`, { token, body: {} });
    redis = new Redis(testSettings().redisUrl);
    fwd = await forward(HOST_IP, Number(new URL(testSettings().redisUrl).port || 6379));
    gateway = run(GW_NS, [process.execPath, 'dist/apps/gateway/src/main.js'], {
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATA_DIR: join(dir, 'data'),
      REDIS_URL: `redis://${HOST_IP}:${fwd.port}`,
      GATEWAY_API_URL: `http://${HOST_IP}:${port}`,
      GATEWAY_ENROLLMENT_TOKEN: et.body.token as string,
      GATEWAY_NAME: 'gw-onb',
      GATEWAY_HOST: GW_UPLINK_IP,
      GATEWAY_PORT: '3001',
      GATEWAY_OPENVPN: 'real',
      GATEWAY_REDIS_PREFIX: h.prefix,
    });
    await until(() => gateway!.log.some((l) => l.includes('gateway listening')), 30_000, 'gateway').catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\n${gateway!.log.slice(-30).join('\n')}`);
      },
    );
    let lastError = '';
    sim = run(RT_NS, [
      process.execPath,
      'dist/apps/routeros-sim/src/cli.js',
      '--host',
      '0.0.0.0',
      '--port',
      '8728',
      '--version',
      '7.16',
      '--log-level',
      'warn',
    ]);
    admin = await until(
      () =>
        RouterOsClient.connect({ host: RT_IP, port: 8728, username: 'admin', password: '' }).catch((err: unknown) => {
          lastError = String(err);
          return undefined;
        }),
      30_000,
      'simulator',
    ).catch((err: unknown) => {
      const diag = [
        execFileSync('ip', ['netns', 'exec', RT_NS, 'ss', '-ltn'], { encoding: 'utf8' }),
        execFileSync('ip', ['netns', 'exec', GW_NS, 'sysctl', 'net.ipv4.ip_forward'], { encoding: 'utf8' }),
        execFileSync('ip', ['route', 'get', RT_IP], { encoding: 'utf8' }),
        execFileSync('ip', ['-n', RT_NS, 'route'], { encoding: 'utf8' }),
        String(sim!.child.exitCode),
      ].join('\n');
      throw new Error(`${String(err)} (${lastError})\n${diag}\n${sim!.log.slice(-20).join('\n')}`);
    });
    runner = new JobRunner(
      {
        db: h.db,
        keyring: new Keyring([{ id: 'test', key: encKey }]),
        channel: new RelayChannel(h.redis, h.prefix),
        logger: createLogger({ app: 'worker-e2e', level: 'warn' }),
        verifierKey: Buffer.from(verifierKey, 'utf8'),
        controllerUrl: `http://${HOST_IP}:${port}`,
        pollInterval: 5,
      },
      {
        queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${h.prefix}bull` },
        redis: h.redis,
        lockPrefix: h.prefix,
        concurrency: 2,
        reconcileEveryMs: 5000,
      },
    );
    runner.start();
    driver = setInterval(() => void drive().catch(() => undefined), 500);
  }, 120_000);

  afterAll(async () => {
    if (driver) clearInterval(driver);
    await runner?.close();
    await admin?.close().catch(() => undefined);
    await stop(vpn);
    await stop(sim);
    await stop(gateway);
    await new Promise<void>((r) => (fwd ? fwd.server.close(() => r()) : r()));
    redis?.disconnect();
    await h?.close().catch(() => undefined);
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (dir && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
    spawnSync('ip', ['route', 'del', `${RT_IP}/32`], { stdio: 'ignore' });
    for (const ns of [GW_NS, RT_NS]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', HOST_VETH[0]!], { stdio: 'ignore' });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('the pasted one-liner brings a fresh router online within 30 s; pasting again is harmless', async () => {
    const site = await api('POST', '/sites', { name: HOSTILE });
    siteId = site.body.id as string;
    const cmd = (await api('POST', `/sites/${siteId}/onboarding`)).body.command as string;
    const t0 = Date.now();
    await admin!.exec('/execute', { script: cmd });
    const rec = await until(() => registry(), 30_000, 'site online through the tunnel');
    const ms = Date.now() - t0;
    console.info(`[onboarding-e2e] pasted -> online in ${ms} ms`);
    expect(ms).toBeLessThan(30_000);
    const tunnel = await until(
      async () => {
        const r = await api('GET', `/sites/${siteId}/tunnel`);
        return r.body?.online === true ? r.body : undefined;
      },
      10_000,
      'site online in the api',
    );
    expect(tunnel).toMatchObject({ online: true, sourceIp: RT_IP, address: rec.address });
    expect((await api('GET', `/sites/${siteId}`)).body.name).toBe(HOSTILE);
    // Live call over the tunnel with the user onboarding created.
    const ident = await until(
      async () => {
        const r = await api('GET', `/sites/${siteId}/live/identity`);
        return r.status === 200 ? r.body : undefined;
      },
      15_000,
      'live identity',
    );
    expect(ident).toEqual({ name: 'MikroTik' });
    // Pasting again: the token is spent, the fetch fails, nothing changes, the tunnel stays.
    const before = JSON.stringify(await admin!.print('/interface/ovpn-client'));
    await expect(admin!.exec('/execute', { script: cmd })).resolves.toBeDefined();
    expect(JSON.stringify(await admin!.print('/interface/ovpn-client'))).toBe(before);
    expect(await registry()).toBeDefined();
  }, 60_000);

  it('recreate tunnel with the tunnel up: new secret, the router back online with it', async () => {
    const before = await registry();
    const res = await api('POST', `/sites/${siteId}/recreate-tunnel`);
    expect(res.status).toBe(201);
    const job = await until(
      async () => {
        const j = (await api('GET', `/jobs/${res.body.id}`)).body;
        return ['succeeded', 'failed', 'expired', 'cancelled'].includes(j.state) ? j : undefined;
      },
      60_000,
      'recreate job',
    );
    expect(job.state).toBe('succeeded');
    const after = await registry();
    expect(after?.connectedSince).not.toBe(before?.connectedSince);
  }, 90_000);

  it('recreate tunnel with the tunnel removed on the router: repaired through the next poll', async () => {
    await admin!.exec('/interface/ovpn-client/remove', { '.id': siteId });
    await until(async () => !(await registry()), 60_000, 'site offline');
    const res = await api('POST', `/sites/${siteId}/recreate-tunnel`);
    const job = await until(
      async () => {
        const j = (await api('GET', `/jobs/${res.body.id}`)).body;
        return ['succeeded', 'failed', 'expired', 'cancelled'].includes(j.state) ? j : undefined;
      },
      90_000,
      'recreate job through the poll',
    );
    expect(job.state).toBe('succeeded');
    expect(job.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'deliver recovery script', detail: 'queued for the next poll' }),
      ]),
    );
    expect(await registry()).toBeDefined();
  }, 120_000);
});
