/* eslint-disable @typescript-eslint/no-unsafe-return -- api response bodies are untyped here and checked field by field */
/**
 * Onboarding and recreate-tunnel end to end with the real tunnel stack (the netns harness of
 * libs/testing): the gateway PROCESS with a real openvpn 2.6 server in its namespace; a
 * fresh RouterOS simulator PROCESS in a router namespace; the real api in this process; a
 * job worker (in-process JobRunner on the relay channel, the same path as the api's live
 * calls).
 *
 * The one-liner from the api is run by the simulator's own script interpreter (sent with
 * `/execute`, the test's stand-in for pasting into the terminal): it fetches the script from
 * the api over the network and imports it. The ovpn-client that script creates is the
 * simulator's own (`--real-ovpn`): the simulator runs a real openvpn client in its namespace
 * with the interface's settings and restarts or stops it when they change, as RouterOS does.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Keyring } from '@backplane/crypto';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { RouterOsClient } from '@backplane/routeros';
import { NetnsLab, pidsIn, tcpForward, testSettings, until, type NsProcess, type TcpForward } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayChannel } from '../../apps/worker/src/jobs/channel';
import { JobRunner } from '../../apps/worker/src/jobs/runner';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { realTunnelsMissing } from '../openvpn/helpers';

const missing = realTunnelsMissing('test/onboarding/netns-e2e.spec.ts');
const ROOT = resolve(__dirname, '../..');
const HOSTILE = 'Site "A" $(x); [/system reboot]\n;/user remove admin';

/** The simulator's openvpn client processes (in the router namespace). */
function openvpnIn(ns: string): number[] {
  return pidsIn(ns).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'openvpn';
    } catch {
      return false;
    }
  });
}

describe.skipIf(missing.length > 0)('onboarding + recreate tunnel end to end (real openvpn, namespaces)', () => {
  const lab = new NetnsLab('bponb');
  const octet = 100 + (parseInt(lab.id.slice(0, 2), 16) % 100);
  const HOST_IP = `10.214.${octet}.1`;
  const GW_UPLINK_IP = `10.214.${octet}.2`;
  const GW_IP = `198.18.${octet}.1`;
  const RT_IP = `198.18.${octet}.2`;
  let GW_NS = '';
  let RT_NS = '';
  let h: Harness;
  let token: string;
  let tenantId: string;
  let redis: Redis;
  let fwd: TcpForward | undefined;
  let dir: string;
  let gateway: NsProcess | undefined;
  let sim: NsProcess | undefined;
  let admin: RouterOsClient | undefined;
  let runner: JobRunner | undefined;
  let siteId = '';
  const encKey = randomBytes(32);
  const verifierKey = randomBytes(32).toString('base64url');

  const api = (method: string, path: string, body?: unknown) =>
    h.call(method, `/api/v1/tenants/${tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) });
  /** A job once it reached a final state. */
  const finishedJob = (id: string, ms: number, what: string) =>
    until(
      async () => {
        const j = (await api('GET', `/jobs/${id}`)).body;
        return ['succeeded', 'failed', 'expired', 'cancelled', 'unknown'].includes(j.state) ? j : undefined;
      },
      ms,
      what,
    ).catch(async (err: unknown) => {
      // the job as it stands, and the router's last poll, say why it did not finish
      throw new Error(`${String(err)}: ${JSON.stringify((await api('GET', `/jobs/${id}`)).body)}`);
    });
  const registry = async () => {
    const raw = await redis.get(`${h.prefix}tunnel:${siteId}`);
    return raw ? (JSON.parse(raw) as { connectedSince: string; address: string }) : undefined;
  };

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    dir = mkdtempSync(join(tmpdir(), 'bp-onb-e2e-'));
    NetnsLab.sweepStale(lab.tag);
    GW_NS = lab.namespace('gw');
    RT_NS = lab.namespace('rt');
    lab.veth({ address: `${HOST_IP}/30` }, { ns: GW_NS, address: `${GW_UPLINK_IP}/30` });
    lab.veth({ ns: GW_NS, address: `${GW_IP}/30` }, { ns: RT_NS, address: `${RT_IP}/30` });
    // The router reaches the controller (its "internet" path) through the gateway namespace.
    lab.route(RT_NS, `${HOST_IP}/32`, 'via', GW_IP);
    lab.sysctl(GW_NS, 'net.ipv4.ip_forward=1');
    lab.route(undefined, `${RT_IP}/32`, 'via', GW_UPLINK_IP);

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
    fwd = await tcpForward(
      { host: HOST_IP },
      { host: '127.0.0.1', port: Number(new URL(testSettings().redisUrl).port || 6379) },
    );
    gateway = lab.run(GW_NS, [process.execPath, join(ROOT, 'dist/apps/gateway/src/main.js')], {
      env: {
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
      },
      cwd: ROOT,
    });
    await until(() => gateway!.log.some((l) => l.includes('gateway listening')), 30_000, 'gateway').catch(
      (err: unknown) => {
        throw new Error(`${String(err)}\n${gateway!.log.slice(-30).join('\n')}`);
      },
    );
    let lastError = '';
    // the simulator's own ovpn-client: a real openvpn client in this namespace
    sim = lab.simulator(RT_NS, {
      cli: join(ROOT, 'dist/apps/routeros-sim/src/cli.js'),
      version: '7.16',
      realOvpn: true,
      logLevel: 'info',
    });
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
  }, 120_000);

  afterAll(async () => {
    await runner?.close();
    await admin?.close().catch(() => undefined);
    await lab.close({ killMatching: dir }); // simulator (and its openvpn), gateway, namespaces
    await h?.close().catch(() => undefined);
    redis?.disconnect();
    await fwd?.close();
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
    // the tunnel is the simulator's own ovpn-client: one openvpn client in the router namespace, running
    expect(openvpnIn(RT_NS)).toHaveLength(1);
    expect(
      (await admin!.print('/interface/ovpn-client', { proplist: ['name', 'running'] })).find(
        (r) => r['name'] === siteId,
      ),
    ).toMatchObject({ running: 'true' });
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
    const job = await finishedJob(res.body.id as string, 60_000, 'recreate job');
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    const after = await registry();
    expect(after?.connectedSince).not.toBe(before?.connectedSince);
  }, 90_000);

  it('recreate tunnel with the tunnel removed on the router: repaired through the next poll', async () => {
    await admin!.exec('/interface/ovpn-client/remove', { '.id': siteId });
    await until(async () => !(await registry()), 60_000, 'site offline');
    // removing the interface stopped the simulator's openvpn
    await until(() => openvpnIn(RT_NS).length === 0, 10_000, 'openvpn client gone');
    const res = await api('POST', `/sites/${siteId}/recreate-tunnel`);
    const job = await finishedJob(res.body.id as string, 90_000, 'recreate job through the poll');
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    expect(job.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'deliver recovery script', detail: 'queued for the next poll' }),
      ]),
    );
    expect(await registry()).toBeDefined();
    expect(openvpnIn(RT_NS)).toHaveLength(1);
  }, 120_000);
});
