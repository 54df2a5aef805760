/**
 * Stopping a worker PROCESS (built JS, `dist/apps/worker/src/main.js`, as deployed) with
 * SIGTERM while it runs a job (issue 15, finding 4): it takes no new work, lets the job
 * finish (`succeeded`), releases the site lock and exits 0; a second job for the same site,
 * queued behind the first, is run by another worker right after — not a lock TTL later.
 * Routers are reached as in production: the real gateway relay (in-process gateway with the
 * fake openvpn management server) in front of a simulated router.
 *
 * Rolling restart under load (issue 15, "graceful stop"): two worker processes, a steady
 * stream of mixed jobs on ten sites; each worker in turn is stopped with SIGTERM while jobs
 * run and replaced. Every job succeeds, exactly once, and none waits for a lock takeover.
 *
 * BP_TEST_WORKER_MAIN runs another build of the worker (checking the test against old code).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { loadGatewayConfig } from '@backplane/config';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import type { FakeOpenVpnServer } from '@backplane/openvpn';
import { testSettings, until } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../apps/gateway/src/gateway';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { freePort, startControlPlane, type ControlPlane, type TestSite } from '../gateway/control-plane';

const ROOT = resolve(__dirname, '../..');
const BUILT = 'dist/apps/worker/src/main.js';
// eslint-disable-next-line no-restricted-syntax -- a test switch, not app configuration
const MAIN = process.env['BP_TEST_WORKER_MAIN'] ?? BUILT;
const encryptionKeys = `test:${randomBytes(32).toString('base64')}`;
const verifierKey = randomBytes(32).toString('base64url');

interface WorkerProc {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly port: number;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

describe('worker SIGTERM', () => {
  let cp: ControlPlane;
  let redis: Redis;
  let router: SimRouter;
  /** The simulated router behind each site (the gateway relays to it). */
  const routers = new Map<string, SimRouter>();
  let gw: Gateway;
  let site: TestSite;
  const dirs: string[] = [];
  const workers: WorkerProc[] = [];

  async function startWorker(name: string): Promise<WorkerProc> {
    const dataDir = mkdtempSync(join(tmpdir(), `bp-${name}-`));
    dirs.push(dataDir);
    const port = await freePort();
    const proc = spawn(process.execPath, [MAIN], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        DATABASE_URL: cp.h.tdb.url,
        REDIS_URL: testSettings().redisUrl,
        REDIS_PREFIX: cp.h.prefix,
        JWT_SIGNING_KEY: cp.h.signingKey,
        ENCRYPTION_KEYS: encryptionKeys,
        TUNNEL_VERIFIER_KEY: verifierKey,
        DATA_DIR: dataDir,
        WORKER_HOST: '127.0.0.1',
        WORKER_PORT: String(port),
        WORKER_CONCURRENCY: '4',
        WORKER_DRAIN_TIMEOUT: '25',
        BACKUP_CRON: 'off',
        LOG_LEVEL: 'info',
      },
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
      proc.once('exit', (code, signal) => r({ code, signal, at: Date.now() })),
    );
    const w = { name, proc, port, output: () => out, exited };
    workers.push(w);
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`worker ${name} exited early:\n${out}`);
        return out.includes('worker listening');
      },
      30_000,
      `worker ${name} listening`,
    );
    return w;
  }

  /** The site's router comes up through the gateway (fake openvpn: the tunnel is authorized). */
  async function connectTunnel(s: TestSite, ip: string): Promise<void> {
    const fake = gw.runtime.fake as FakeOpenVpnServer;
    await until(
      async () =>
        (await fake.connectTunnel({ username: s.user, password: s.password, ip }).outcome).outcome === 'authorized',
      10_000,
      `tunnel of ${s.id} authorized`,
    );
  }

  /** SIGTERM; the exit (code, signal, when), or undefined when it did not exit within `boundMs`. */
  async function terminate(w: WorkerProc, boundMs: number) {
    w.proc.kill('SIGTERM');
    return Promise.race([w.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), boundMs))]);
  }

  const job = async (id: string) =>
    (await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/jobs/${id}`, { token: cp.token })).body as {
      state: string;
      error: string | null;
      createdAt: string;
      startedAt: string | null;
      finishedAt: string | null;
    };
  const request = async (siteId: string, body: { kind: string; payload: unknown }): Promise<string> => {
    const res = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/sites/${siteId}/jobs`, {
      token: cp.token,
      body,
    });
    if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    return res.body.id as string;
  };
  /** The sum of a counter on a worker's /metrics (0 when absent). */
  const metric = async (w: WorkerProc, name: string): Promise<number> =>
    (await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text())
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const runCommand = (): Promise<string> =>
    request(site.id, { kind: 'run-command', payload: { command: '/system/identity/print' } });

  beforeAll(async () => {
    if (MAIN === BUILT) execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    cp = await startControlPlane('127.0.0.1', { ENCRYPTION_KEYS: encryptionKeys, TUNNEL_VERIFIER_KEY: verifierKey });
    redis = new Redis(testSettings().redisUrl);
    site = await cp.addSite('site-stop');
    router = await startRouter({
      identity: 'router-stop',
      users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }],
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'bp-worker-stop-gw-'));
    dirs.push(dataDir);
    const gwPort = await freePort();
    gw = await startGateway({
      config: loadGatewayConfig({
        REDIS_URL: testSettings().redisUrl,
        DATA_DIR: dataDir,
        GATEWAY_API_URL: cp.url,
        GATEWAY_OPENVPN: 'fake',
        GATEWAY_PORT: String(gwPort),
        GATEWAY_REDIS_PREFIX: cp.h.prefix,
        GATEWAY_ENROLLMENT_TOKEN: await cp.enrollmentToken(),
        GATEWAY_NAME: 'gw-worker-stop',
      }),
      logger: createLogger({ app: 'gw', level: 'warn', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
      redis,
      registry: createMetricsRegistry('gateway'),
      syncIntervalMs: 300,
      routerEndpoint: (siteId) => ({ host: '127.0.0.1', port: routers.get(siteId)?.port ?? 1 }),
    });
    await gw.app.listen(gwPort, '127.0.0.1');
    routers.set(site.id, router);
    await connectTunnel(site, '198.51.100.9');
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await gw?.close().catch(() => undefined);
    for (const r of new Set([router, ...routers.values()])) await r?.stop();
    redis?.disconnect();
    await cp?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('finishes the job in flight, exits 0, and the queued job runs on the other worker at once', async () => {
    const a = await startWorker('worker-a');
    // every router reply takes 1.8 s (a login, two replies, stays under the 5-s connect limit):
    // the run-command job (export, command, export) takes ~6 s, so it is still running when
    // worker b is up and SIGTERM reaches worker a, even where starting b takes seconds
    router.faults.latencyMs = 1800;
    const first = await runCommand();
    await until(async () => (await job(first)).state === 'running', 20_000, 'first job running');
    const second = await runCommand();
    await until(async () => (await job(second)).state === 'waiting', 10_000, 'second job waiting for the site');
    const b = await startWorker('worker-b');

    const t0 = Date.now();
    const exit = await terminate(a, 30_000);
    expect(exit, `worker a did not exit:\n${a.output()}`).toBeDefined();
    expect({ code: exit!.code, signal: exit!.signal }, a.output()).toEqual({ code: 0, signal: null });
    const done = await job(first);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');

    // the site lock was released: the other worker runs the second job now, not a lock TTL (30 s) later
    await until(async () => (await job(second)).state === 'succeeded', 30_000, 'second job succeeded');
    const secondDone = await job(second);
    const gap = Date.parse(secondDone.finishedAt!) - Date.parse(done.finishedAt!);
    expect(gap).toBeLessThan(15_000); // its own ~8 s run plus a retry; a lock TTL would add 30 s
    console.log(
      `[worker-stop] SIGTERM -> exit ${exit!.at - t0} ms; second job finished ${gap} ms after the first (on the other worker)`,
    );

    // and the other worker's /metrics counts it
    const metrics = await (await fetch(`http://127.0.0.1:${b.port}/metrics`)).text();
    const line = metrics
      .split('\n')
      .find((l) => l.startsWith('backplane_worker_jobs_finished_total{') && l.includes('state="succeeded"'));
    expect(line).toContain('kind="run-command"');
    expect(line).toMatch(/ 1$/);
  }, 120_000);

  it('rolling restart of two workers under a steady job stream: every job succeeds exactly once, no takeover wait', async () => {
    const LOCK_TTL_MS = 30_000; // the runner's site lock TTL: a takeover waits this long
    const DRAIN_MS = 25_000; // WORKER_DRAIN_TIMEOUT of startWorker
    // the first test's workers are not part of this one
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) await terminate(w, 40_000);
    router.faults.latencyMs = 0;

    // ten sites, each its own simulated router behind the gateway; every reply takes 150 ms,
    // so a job takes a few seconds and several are in flight on each worker at any time
    const sites: TestSite[] = [];
    /** Items ever added to an address list, by site, list and address (an add repeated shows as 2). */
    const adds = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      const s = await cp.addSite(`site-roll-${i}`);
      const r = await startRouter({
        identity: `router-roll-${i}`,
        users: [{ name: 'bp-api', password: 'router-secret-1', group: 'full' }],
      });
      const seen = new Set<number>();
      r.state.onChange((e) => {
        if (e.store !== 'ip/firewall/address-list' || !e.item || seen.has(e.id)) return;
        seen.add(e.id);
        const key = `${i}|${e.item.values['list']}|${e.item.values['address']}`;
        adds.set(key, (adds.get(key) ?? 0) + 1);
      });
      r.faults.latencyMs = 150;
      routers.set(s.id, r);
      sites.push(s);
      await connectTunnel(s, `198.51.100.${20 + i}`);
    }

    let a = await startWorker('roll-a1');
    let b = await startWorker('roll-b1');

    // the stream: apply-config (one new address-list entry), backup, a read-only print, and a
    // run-command that adds an entry (not repeatable: sent twice it would add it twice)
    const requested: { id: string; site: number; entry?: string }[] = [];
    // it runs until both workers are replaced, at least MIN_JOBS, at most MAX_JOBS
    const MIN_JOBS = 60;
    const MAX_JOBS = 120;
    let producing = true;
    const produce = async (): Promise<void> => {
      for (let n = 0; (producing || n < MIN_JOBS) && n < MAX_JOBS; n++) {
        const i = n % sites.length;
        const siteId = sites[i]!.id;
        const address = `10.${50 + (n % 8)}.${i}.${n}`;
        switch (n % 8) {
          case 0:
          case 3:
          case 6:
            requested.push({
              id: await request(siteId, {
                kind: 'apply-config',
                payload: { changes: [{ menu: 'address-list', list: 'roll', addresses: [address] }] },
              }),
              site: i,
              entry: `roll|${address}`,
            });
            break;
          case 1:
          case 5:
            requested.push({ id: await request(siteId, { kind: 'backup', payload: {} }), site: i });
            break;
          case 7:
            requested.push({
              id: await request(siteId, {
                kind: 'run-command',
                payload: { command: '/ip/firewall/address-list/add', attributes: { list: 'once', address } },
              }),
              site: i,
              entry: `once|${address}`,
            });
            break;
          default:
            requested.push({
              id: await request(siteId, { kind: 'run-command', payload: { command: '/system/resource/print' } }),
              site: i,
            });
        }
        await new Promise((r) => setTimeout(r, 500)); // the stream's pace, not a synchronisation
      }
    };
    const stream = produce();

    /** The jobs a stopping worker said it was waiting for (its drain log line). */
    const inFlightAtStop = (w: WorkerProc): string[] =>
      w
        .output()
        .split('\n')
        .filter((l) => l.includes('draining: waiting for running jobs'))
        .flatMap((l) => (JSON.parse(l) as { jobs: string[] }).jobs);
    const runningNow = async () =>
      (await Promise.all(requested.map((r) => job(r.id)))).filter((j) => j.state === 'running').length;

    const stops: { name: string; at: number; ms: number; inFlight: string[] }[] = [];
    const rollOne = async (old: WorkerProc, name: string): Promise<WorkerProc> => {
      // the old worker has taken work and jobs are running
      await until(
        async () => (await metric(old, 'backplane_worker_jobs_finished_total')) >= 2,
        60_000,
        `${old.name} working`,
      );
      // five running jobs: at least one is on the old worker (each runs at most four at once)
      await until(async () => (await runningNow()) >= 5, 30_000, 'jobs in flight');
      const t0 = Date.now();
      const exit = await terminate(old, DRAIN_MS + 15_000);
      expect(exit, `${old.name} did not exit:\n${old.output()}`).toBeDefined();
      expect({ code: exit!.code, signal: exit!.signal }, old.output()).toEqual({ code: 0, signal: null });
      expect(exit!.at - t0).toBeLessThan(DRAIN_MS + 10_000);
      stops.push({ name: old.name, at: t0, ms: exit!.at - t0, inFlight: inFlightAtStop(old) });
      const next = await startWorker(name);
      await until(
        async () => (await metric(next, 'backplane_worker_jobs_finished_total')) >= 1,
        60_000,
        `${name} working`,
      );
      return next;
    };
    a = await rollOne(a, 'roll-a2');
    b = await rollOne(b, 'roll-b2');
    producing = false;
    await stream;
    expect(requested.length).toBeGreaterThanOrEqual(MIN_JOBS);

    const terminal = ['succeeded', 'failed', 'unknown', 'cancelled', 'expired'];
    await until(
      async () => (await Promise.all(requested.map((r) => job(r.id)))).every((j) => terminal.includes(j.state)),
      90_000,
      'every job finished',
    );
    const finals = await Promise.all(requested.map(async (r) => ({ ...r, ...(await job(r.id)) })));

    // every job succeeded
    const notOk = finals.filter((j) => j.state !== 'succeeded');
    expect(notOk.map((j) => `${j.id} ${j.state} ${j.error}`)).toEqual([]);
    // each job ran exactly once: its entry is on its router, added once
    for (const j of finals.filter((x) => x.entry)) expect(adds.get(`${j.site}|${j.entry}`), j.id).toBe(1);
    // exactly one terminal state per job (the outbox records every terminal transition)
    const events = await cp.h.ds.query<{ id: string; type: string }[]>(
      `SELECT data->>'jobId' AS id, type FROM outbox_events WHERE data ? 'jobId' AND (type LIKE 'job.%' OR type = 'backup.failed')`,
    );
    const mine = new Set(requested.map((r) => r.id));
    const perJob = new Map<string, string[]>();
    for (const e of events) if (mine.has(e.id)) perJob.set(e.id, [...(perJob.get(e.id) ?? []), e.type]);
    for (const r of requested) expect(perJob.get(r.id), r.id).toEqual(['job.succeeded']);

    // throughput never stopped: no gap between completions as long as a lock takeover
    const done = finals.map((j) => Date.parse(j.finishedAt!)).sort((x, y) => x - y);
    const gaps = done.slice(1).map((t, k) => t - done[k]!);
    const maxGap = Math.max(...gaps);
    expect(maxGap).toBeLessThan(LOCK_TTL_MS);
    // no job waited for a takeover: none took as long as a lock TTL from request to end (they take
    // a few seconds), and no worker took a site lock over (the stopped workers released theirs)
    const slowest = Math.max(...finals.map((j) => Date.parse(j.finishedAt!) - Date.parse(j.createdAt)));
    expect(slowest).toBeLessThan(LOCK_TTL_MS);
    for (const w of [a, b]) expect(await metric(w, 'backplane_worker_site_lock_takeovers_total'), w.name).toBe(0);
    // jobs really were in flight at each SIGTERM: in the fleet (started before, finished after),
    // and on the stopped worker (the jobs its drain waited for, all among the succeeded ones)
    for (const s of stops) {
      const spanning = finals.filter((j) => Date.parse(j.startedAt!) < s.at && Date.parse(j.finishedAt!) > s.at);
      expect(spanning.length, `no job in flight at ${s.name}'s SIGTERM`).toBeGreaterThan(0);
      expect(s.inFlight.length, `${s.name} had no job in flight`).toBeGreaterThan(0);
      for (const id of s.inFlight) expect(finals.find((j) => j.id === id)?.state, id).toBe('succeeded');
    }

    // no site lock left behind: a following job on every site starts promptly
    const t1 = Date.now();
    const follow = await Promise.all(
      sites.map((s) => request(s.id, { kind: 'run-command', payload: { command: '/system/identity/print' } })),
    );
    await until(
      async () => (await Promise.all(follow.map(job))).every((j) => j.state === 'succeeded'),
      LOCK_TTL_MS,
      'following jobs succeeded',
    );
    const followMs = Date.now() - t1;
    for (const id of follow) {
      const j = await job(id);
      expect(Date.parse(j.startedAt!) - Date.parse(j.createdAt), id).toBeLessThan(LOCK_TTL_MS / 2);
    }
    console.log(
      `[worker-stop] rolling restart: ${requested.length} jobs all succeeded; ${stops
        .map(
          (s) =>
            `${s.name} SIGTERM -> exit ${s.ms} ms with ${s.inFlight.length} in flight (${
              s.inFlight.filter((id) => finals.find((j) => j.id === id)?.entry?.startsWith('once|')).length
            } not repeatable)`,
        )
        .join(
          ', ',
        )}; max gap between completions ${maxGap} ms; slowest job ${slowest} ms; following jobs on ${sites.length} sites done in ${followMs} ms`,
    );
  }, 240_000);
});
