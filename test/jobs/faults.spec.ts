/**
 * Fault tests: a worker PROCESS killed with SIGKILL mid-job (configuration steps, and at the
 * moment the router executes a reboot, an upgrade install or a reset-and-restore), a private
 * redis-server restarted empty with jobs and a batch in flight, a router going offline
 * mid-job for each kind that touches it. Every job must end in exactly one terminal state,
 * no change and no dangerous command applied twice (counted on the simulator), nothing lost.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportWithoutHeader } from '@backplane/jobs';
import { until } from '@backplane/testing';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { freePort } from '../gateway/control-plane';

const ROOT = resolve(__dirname, '../..');
const USER = { name: 'bp-api', password: 'router-secret-1', group: 'full' };

let h: Harness;
let dir: string;
let redisPort: number;
let redisProc: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let tenantId: string;
let token: string;
const encKey = randomBytes(32);
const verifierKey = randomBytes(32).toString('base64url');
const sites: Record<string, number> = {};
const routers = new Map<string, SimRouter>();

async function startRedis(): Promise<void> {
  redisProc = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const r = new Redis(redisPort, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch {
      r.disconnect();
      if (Date.now() > end) throw new Error('private redis did not start');
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

async function stopProc(p: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((res) => {
    p.once('exit', () => res());
    p.kill(signal);
  });
}

function writeConfig(): string {
  const file = join(dir, 'worker.json');
  writeFileSync(
    file,
    JSON.stringify({
      databaseUrl: h.tdb.url,
      redisUrl: `redis://127.0.0.1:${redisPort}`,
      bullPrefix: `${h.prefix}bull`,
      lockPrefix: h.prefix,
      encryptionKey: encKey.toString('base64'),
      verifierKey,
      controllerUrl: 'http://127.0.0.1:1',
      concurrency: 4,
      lockDurationMs: 3000,
      siteLockTtlMs: 3000,
      sites,
    }),
  );
  return file;
}

async function startWorker(): Promise<void> {
  const p = spawn(process.execPath, ['dist/scripts/jobs-worker.js', writeConfig()], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker = p;
  let err = '';
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`worker did not start: ${err}`)), 20_000);
    p.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('jobs-worker ready')) {
        clearTimeout(t);
        res();
      }
    });
  });
}

const api = (method: string, path: string, body?: unknown) =>
  h.call(method, `/api/v1/tenants/${tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) });

async function addSite(
  name: string,
  latencyMs = 0,
  opts: { version?: string; latestVersion?: string; tags?: string[] } = {},
): Promise<string> {
  const id = (await api('POST', '/sites', { name, tags: opts.tags ?? [] })).body.id as string;
  const r = await startRouter({
    users: [USER],
    faults: { latencyMs },
    rebootDelayMs: 1000,
    ...(opts.version ? { version: opts.version } : {}),
    ...(opts.latestVersion ? { latestVersion: opts.latestVersion } : {}),
  });
  routers.set(id, r);
  sites[id] = r.port;
  writeConfig();
  expect(
    (await api('PUT', `/sites/${id}/router-credentials`, { username: USER.name, password: USER.password })).status,
  ).toBe(204);
  return id;
}

async function dbJob(id: string) {
  const rows = await h.ds.query<
    {
      state: string;
      steps: { name: string; state: string; detail?: string }[];
      finished_at: Date | null;
      started_at: Date | null;
      created_at: Date;
      result: unknown;
      error: string | null;
    }[]
  >(`SELECT state, steps, finished_at, started_at, created_at, result, error FROM jobs WHERE id = $1`, [id]);
  return rows[0]!;
}

/**
 * Counts what the router's log says it executed (`system rebooted by`, `configuration reset
 * by`, `router rebooting to install`) as it happens — /log itself is emptied by a reboot —
 * and runs `then` synchronously at that moment (before the reply leaves the router).
 */
function onRouterLog(site: string, re: RegExp, then: (n: number) => void = () => undefined): () => number {
  let n = 0;
  routers.get(site)!.state.onChange((e) => {
    if (e.store === 'log' && e.item && re.test(e.item.values['message'] ?? '')) then(++n);
  });
  return () => n;
}

/** The router's API service on or off (connections cut, state kept): the site online or offline. */
function routerApi(site: string, on: boolean): void {
  const r = routers.get(site)!;
  r.state.update('ip/service', r.state.find('ip/service', { name: 'api' })!, { disabled: on ? 'false' : 'true' });
}

/** SIGKILL now (from inside a simulator hook: the router has just executed the command). */
function killWorkerNow(): Promise<void> {
  const p = worker;
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((res) => p.once('exit', () => res()));
  p.kill('SIGKILL');
  return exited;
}

const exportOf = async (site: string) => {
  const res = await runScript(routers.get(site)!, '/export show-sensitive');
  expect(res.error).toBeUndefined();
  return exportWithoutHeader(res.output.join('\n'));
};

/** Exactly one terminal state, each step done at most once, timestamps in order. */
async function expectCleanEnd(id: string, state = 'succeeded') {
  const j = await until(
    async () => {
      const r = await dbJob(id);
      return ['succeeded', 'failed', 'cancelled', 'expired', 'unknown'].includes(r.state) ? r : undefined;
    },
    45_000,
    `job ${id} to finish`,
  );
  expect(j.state, JSON.stringify(j)).toBe(state);
  expect(j.finished_at).not.toBeNull();
  if (j.started_at) expect(j.started_at.getTime()).toBeLessThanOrEqual(j.finished_at!.getTime());
  expect(j.created_at.getTime()).toBeLessThanOrEqual(j.finished_at!.getTime());
  const done = j.steps.filter((s) => s.state === 'done').map((s) => s.name);
  expect(new Set(done).size).toBe(done.length);
  // It stays that way: nothing runs it again.
  await new Promise((r) => setTimeout(r, 1500));
  const later = await dbJob(id);
  expect(later.state).toBe(state);
  expect(later.finished_at?.getTime()).toBe(j.finished_at!.getTime());
  expect(later.steps).toHaveLength(j.steps.length);
  return j;
}

const bigChange = (n: number, list: string) => ({
  kind: 'apply-config',
  payload: {
    changes: Array.from({ length: n }, (_, i) => ({ menu: 'address-list', list, addresses: [`10.9.${i}.0/24`] })),
  },
});

const entries = (site: string, list: string) =>
  routers
    .get(site)!
    .state.items('ip/firewall/address-list')
    .filter((a) => a.values['list'] === list)
    .map((a) => a.values['address']);

beforeAll(async () => {
  execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
  dir = mkdtempSync(join(tmpdir(), 'bp-jobfaults-'));
  redisPort = await freePort();
  await startRedis();
  h = await startApi({
    TUNNEL_VERIFIER_KEY: verifierKey,
    ENCRYPTION_KEYS: `test:${encKey.toString('base64')}`,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
  });
  const boot = await bootstrap(h);
  tenantId = boot.tenantId;
  token = boot.token;
  await startWorker();
}, 120_000);

afterAll(async () => {
  await stopProc(worker, 'SIGKILL');
  for (const r of routers.values()) await r.stop().catch(() => undefined);
  await h?.close();
  await stopProc(redisProc, 'SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('job faults', () => {
  it('kill -9 of the worker mid-job: the job is taken over and finishes once, nothing applied twice', async () => {
    const site = await addSite('killed', 40);
    const res = await api('POST', `/sites/${site}/jobs`, bigChange(20, 'k9'));
    expect(res.status).toBe(201);
    await until(
      async () => (await dbJob(res.body.id)).steps.filter((s) => s.state === 'done').length >= 3,
      30_000,
      'some steps',
    );
    await stopProc(worker, 'SIGKILL');
    const mid = await dbJob(res.body.id);
    expect(mid.state).toBe('running');
    await startWorker();
    await expectCleanEnd(res.body.id);
    const got = entries(site, 'k9');
    expect(got).toHaveLength(20);
    expect(new Set(got).size).toBe(20);
  }, 90_000);

  it('a router going offline mid-job: the job waits and finishes when it is back', async () => {
    const site = await addSite('offline-mid', 40);
    const res = await api('POST', `/sites/${site}/jobs`, bigChange(20, 'off'));
    await until(
      async () => (await dbJob(res.body.id)).steps.filter((s) => s.state === 'done').length >= 3,
      30_000,
      'some steps',
    );
    // The router drops off the network (its API port closes, connections cut), keeping its state.
    const r = routers.get(site)!;
    expect((await runScript(r, '/ip service set [find name=api] disabled=yes')).error).toBeUndefined();
    await until(async () => (await dbJob(res.body.id)).state === 'waiting', 20_000, 'waiting');
    expect((await runScript(r, '/ip service set [find name=api] disabled=no')).error).toBeUndefined();
    await expectCleanEnd(res.body.id);
    const got = entries(site, 'off');
    expect(new Set(got).size).toBe(got.length);
    expect(got).toHaveLength(20);
  }, 90_000);

  it('Redis restarted empty: open jobs are re-queued from PostgreSQL and run once', async () => {
    const site = await addSite('redis-restart');
    const r = routers.get(site)!;
    const port = r.port;
    await r.stop(); // offline: the job waits in Redis
    const res = await api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'address-list', list: 'rr', addresses: ['192.0.2.9'] }] },
    });
    await until(async () => (await dbJob(res.body.id)).state === 'waiting', 20_000, 'waiting');
    await stopProc(redisProc, 'SIGKILL');
    await startRedis(); // empty: no persistence
    const back = await startRouter({ port, users: [USER] });
    routers.set(site, back);
    await expectCleanEnd(res.body.id);
    expect(entries(site, 'rr')).toEqual(['192.0.2.9']);
  }, 90_000);

  it('kill -9 the moment the router executes the reboot: it is never sent again, the job ends once', async () => {
    const site = await addSite('k9-reboot', 20);
    const reboots = onRouterLog(site, /^system rebooted by /, (n) => {
      if (n === 1) void killWorkerNow();
    });
    const res = await api('POST', `/sites/${site}/jobs`, { kind: 'reboot', payload: {} });
    expect(res.status).toBe(201);
    await until(
      () => Promise.resolve(reboots() === 1 && worker?.signalCode === 'SIGKILL'),
      30_000,
      'the reboot and the kill',
    );
    expect((await dbJob(res.body.id)).state).toBe('running');
    await startWorker();
    const j = await expectCleanEnd(res.body.id);
    expect(reboots()).toBe(1);
    // The kill landed after the router executed it and before the worker heard back.
    expect(j.steps.filter((s) => s.name === 'reboot' && s.state === 'done')).toEqual([
      expect.objectContaining({ detail: 'the reboot may have been sent before the worker restarted: verified below' }),
    ]);
    expect(j.steps.map((s) => s.name)).toContain('back online');
  }, 90_000);

  it('kill -9 the moment the router starts the upgrade install: installed once, verified, one terminal state', async () => {
    const site = await addSite('k9-upgrade', 20, { version: '7.15', latestVersion: '7.16' });
    const installs = onRouterLog(site, /^router rebooting to install /, (n) => {
      if (n === 1) void killWorkerNow();
    });
    const reboots = onRouterLog(site, /^router rebooted$/);
    const res = await api('POST', `/sites/${site}/jobs`, { kind: 'routeros-upgrade', payload: {} });
    await until(
      () => Promise.resolve(installs() === 1 && worker?.signalCode === 'SIGKILL'),
      30_000,
      'the install and the kill',
    );
    await startWorker();
    const j = await expectCleanEnd(res.body.id);
    expect(j.result).toMatchObject({ from: '7.15', to: '7.16', routerboot: { current: '7.16', upgrade: '7.16' } });
    expect(installs()).toBe(1);
    // the install's reboot, then the RouterBOOT one (ADR 0098)
    expect(reboots()).toBe(2);
    expect(routers.get(site)!.version).toBe('7.16');
    expect(j.steps.filter((s) => s.name === 'download and install' && s.state === 'done')).toEqual([
      expect.objectContaining({ detail: 'the install may have started before the worker restarted: verified below' }),
    ]);
  }, 90_000);

  it('kill -9 at the install and again at the RouterBOOT reboot: one install, two reboots, both versions verified', async () => {
    const site = await addSite('k9-firmware', 20, { version: '7.16' });
    const r = routers.get(site)!;
    const installs = onRouterLog(site, /^router rebooting to install /, (n) => {
      if (n === 1) void killWorkerNow();
    });
    // `system rebooted by`: only /system/reboot logs it (the install's reboot does not)
    const firmwareReboots = onRouterLog(site, /^system rebooted by /, (n) => {
      if (n === 1) void killWorkerNow();
    });
    const reboots = onRouterLog(site, /^router rebooted$/);
    const res = await api('POST', `/sites/${site}/jobs`, { kind: 'routeros-upgrade', payload: {} });
    expect(res.status).toBe(201);
    await until(
      () => Promise.resolve(installs() === 1 && worker?.signalCode === 'SIGKILL'),
      30_000,
      'the install and the first kill',
    );
    await startWorker();
    await until(
      () => Promise.resolve(firmwareReboots() === 1 && worker?.signalCode === 'SIGKILL'),
      45_000,
      'the RouterBOOT reboot and the second kill',
    );
    expect((await dbJob(res.body.id)).state).toBe('running');
    await startWorker();
    const j = await expectCleanEnd(res.body.id);
    expect(j.result).toMatchObject({
      from: '7.16',
      to: '7.20.2',
      routerboot: { current: '7.20.2', upgrade: '7.20.2' },
    });
    expect(installs()).toBe(1);
    expect(firmwareReboots()).toBe(1);
    expect(reboots()).toBe(2);
    expect(r.version).toBe('7.20.2');
    expect(r.state.single('system/routerboard').values['current-firmware']).toBe('7.20.2');
    const done = (name: string) => j.steps.filter((s) => s.name === name && s.state === 'done');
    expect(done('download and install')).toEqual([
      expect.objectContaining({ detail: 'the install may have started before the worker restarted: verified below' }),
    ]);
    expect(done('reboot for RouterBOOT')).toEqual([
      expect.objectContaining({ detail: 'the reboot may have been sent before the worker restarted: verified below' }),
    ]);
    // the steps before each kill ran once, in the run that began them
    expect(done('pre-upgrade backup')).toHaveLength(1);
    expect(done('upgrade RouterBOOT')).toHaveLength(1);
    expect(done('verify RouterBOOT')).toHaveLength(1);
  }, 120_000);

  it('kill -9 the moment the router resets for a restore: reset once, the backup restored, one terminal state', async () => {
    const site = await addSite('k9-restore', 20);
    const backup = await api('POST', `/sites/${site}/backups`);
    await expectCleanEnd(backup.body.id);
    const backupId = ((await dbJob(backup.body.id)).result as { backupId: string }).backupId;
    const good = await exportOf(site);
    expect((await runScript(routers.get(site)!, '/ip dns set servers=203.0.113.53')).error).toBeUndefined();
    expect(await exportOf(site)).not.toBe(good);
    const resets = onRouterLog(site, /^configuration reset by /, (n) => {
      if (n === 1) void killWorkerNow();
    });
    const reboots = onRouterLog(site, /^system rebooted by /);
    const res = await h.call('POST', `/api/v1/tenants/${tenantId}/backups/${backupId}/restore`, { token });
    expect(res.status).toBe(201);
    await until(
      () => Promise.resolve(resets() === 1 && worker?.signalCode === 'SIGKILL'),
      30_000,
      'the reset and the kill',
    );
    await startWorker();
    const j = await expectCleanEnd(res.body.id);
    expect(resets()).toBe(1);
    expect(reboots()).toBe(1);
    expect(j.steps.filter((s) => s.name === 'reset and import' && s.state === 'done')).toEqual([
      expect.objectContaining({ detail: 'the reset may have been sent before the worker restarted: verified below' }),
    ]);
    expect(await exportOf(site)).toBe(good);
  }, 90_000);

  it('Redis restarted empty with a batch and single jobs in flight: every job ends once, nothing applied twice', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await addSite(`rr-batch-${i}`, 30, { tags: ['rr-batch'] }));
    const away = await addSite('rr-batch-offline', 0, { tags: ['rr-batch'] });
    routerApi(away, false);
    const bulk = await h.call('POST', `/api/v1/tenants/${tenantId}/jobs/bulk`, {
      token,
      body: {
        kind: 'apply-config',
        tags: ['rr-batch'],
        payload: {
          changes: Array.from({ length: 12 }, (_, i) => ({
            menu: 'address-list',
            list: 'rr-b',
            addresses: [`10.77.${i}.0/24`],
          })),
        },
      },
    });
    expect(bulk.status).toBe(201);
    const batchId = bulk.body.batch.id as string;
    // A second job on a busy site (it waits for the site lock) and a single job.
    const behind = await api('POST', `/sites/${ids[0]}/jobs`, bigChange(6, 'rr-s'));
    const single = await api('POST', `/sites/${away}/jobs`, bigChange(3, 'rr-away'));
    const batchJobs = (
      await h.ds.query<{ id: string; site_id: string }[]>(`SELECT id, site_id FROM jobs WHERE batch_id = $1`, [batchId])
    ).map((r) => r.id);
    expect(batchJobs).toHaveLength(4);
    await until(
      async () => {
        const js = await Promise.all(batchJobs.map(dbJob));
        return js.some((j) => j.steps.filter((s) => s.state === 'done').length >= 3);
      },
      30_000,
      'batch jobs mid-way',
    );
    await stopProc(redisProc, 'SIGKILL');
    await startRedis(); // empty: no persistence
    routerApi(away, true);
    for (const id of [...batchJobs, behind.body.id as string, single.body.id as string]) await expectCleanEnd(id);
    for (const site of [...ids, away]) {
      const got = entries(site, 'rr-b');
      expect(got).toHaveLength(12);
      expect(new Set(got).size).toBe(12);
    }
    expect(entries(ids[0]!, 'rr-s')).toHaveLength(6);
    expect(entries(away, 'rr-away')).toHaveLength(3);
    const status = await h.call('GET', `/api/v1/tenants/${tenantId}/job-batches/${batchId}`, { token });
    expect(status.body).toMatchObject({ done: true, finished: 4, states: { succeeded: 4 } });
  }, 120_000);

  describe('a router going offline mid-job', () => {
    /** Cut the router off right after it executed `re`; back after `ms`. */
    function offlineAfter(site: string, re: RegExp, ms = 2500): { count: () => number; back: Promise<void> } {
      let resolveBack!: () => void;
      const back = new Promise<void>((r) => (resolveBack = r));
      const count = onRouterLog(site, re, (n) => {
        if (n !== 1) return;
        routerApi(site, false);
        setTimeout(() => {
          routerApi(site, true);
          resolveBack();
        }, ms);
      });
      return { count, back };
    }

    it('run-command (not repeatable): executed once; succeeded if its reply arrived, else unknown (interrupted after sending)', async () => {
      const site = await addSite('off-cmd', 30);
      const r = routers.get(site)!;
      let cut = false;
      r.state.onChange((e) => {
        if (e.store === 'ip/address' && e.item?.values['address'] === '192.0.2.99/24' && !cut) {
          cut = true;
          setImmediate(() => routerApi(site, false));
          setTimeout(() => routerApi(site, true), 2500);
        }
      });
      const res = await api('POST', `/sites/${site}/jobs`, {
        kind: 'run-command',
        payload: { command: '/ip/address/add', attributes: { address: '192.0.2.99/24', interface: 'ether3' } },
      });
      const j = await until(
        async () => {
          const x = await dbJob(res.body.id);
          return ['succeeded', 'failed', 'unknown'].includes(x.state) ? x : undefined;
        },
        45_000,
        'the command job to end',
      );
      await expectCleanEnd(res.body.id, j.state);
      expect(j.state).not.toBe('failed');
      if (j.state === 'unknown') expect(j.error).toMatch(/interrupted after it may have been sent/);
      const added = r.state.items('ip/address').filter((a) => a.values['address'] === '192.0.2.99/24');
      expect(added).toHaveLength(1);
    }, 60_000);

    it('backup: offline during the export → waits, then one backup stored', async () => {
      const site = await addSite('off-backup', 400);
      const res = await api('POST', `/sites/${site}/backups`);
      await until(async () => (await dbJob(res.body.id)).state === 'running', 20_000, 'running');
      routerApi(site, false);
      await until(async () => (await dbJob(res.body.id)).state === 'waiting', 20_000, 'waiting');
      routerApi(site, true);
      await expectCleanEnd(res.body.id);
      const rows = await h.ds.query<{ n: number }[]>(`SELECT count(*)::int AS n FROM backups WHERE site_id = $1`, [
        site,
      ]);
      expect(rows[0]!.n).toBe(1);
    }, 60_000);

    it('reboot: offline after the reboot for longer than it takes → rebooted once, job ends once', async () => {
      const site = await addSite('off-reboot', 20);
      const reboots = offlineAfter(site, /^system rebooted by /);
      const res = await api('POST', `/sites/${site}/jobs`, { kind: 'reboot', payload: {} });
      await reboots.back;
      await expectCleanEnd(res.body.id);
      expect(reboots.count()).toBe(1);
    }, 60_000);

    it('routeros-upgrade: offline after the install → installed once, verified', async () => {
      const site = await addSite('off-upgrade', 20, { version: '7.15', latestVersion: '7.16' });
      const installs = offlineAfter(site, /^router rebooting to install /);
      const res = await api('POST', `/sites/${site}/jobs`, { kind: 'routeros-upgrade', payload: {} });
      await installs.back;
      const j = await expectCleanEnd(res.body.id);
      expect(installs.count()).toBe(1);
      expect(j.result).toMatchObject({ from: '7.15', to: '7.16', routerboot: { current: '7.16', upgrade: '7.16' } });
    }, 60_000);

    it('restore: offline after the reset → reset once, the backup restored', async () => {
      const site = await addSite('off-restore', 20);
      const backup = await api('POST', `/sites/${site}/backups`);
      await expectCleanEnd(backup.body.id);
      const backupId = ((await dbJob(backup.body.id)).result as { backupId: string }).backupId;
      const good = await exportOf(site);
      expect((await runScript(routers.get(site)!, '/system identity set name=drifted')).error).toBeUndefined();
      const resets = offlineAfter(site, /^configuration reset by /);
      const res = await h.call('POST', `/api/v1/tenants/${tenantId}/backups/${backupId}/restore`, { token });
      await resets.back;
      await expectCleanEnd(res.body.id);
      expect(resets.count()).toBe(1);
      expect(await exportOf(site)).toBe(good);
    }, 60_000);
  });
});
