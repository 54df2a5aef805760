/**
 * Fault tests: a worker PROCESS killed with SIGKILL mid-job, a private Redis restarted
 * empty, a router going offline mid-job. Every job must end in exactly one terminal state,
 * no change applied twice (checked on the simulator), nothing lost.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

async function addSite(name: string, latencyMs = 0): Promise<string> {
  const id = (await api('POST', '/sites', { name })).body.id as string;
  const r = await startRouter({ users: [USER], faults: { latencyMs } });
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
    { state: string; steps: { name: string; state: string }[]; finished_at: Date | null }[]
  >(`SELECT state, steps, finished_at FROM jobs WHERE id = $1`, [id]);
  return rows[0]!;
}

async function until<T>(fn: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Exactly one terminal state, each step done at most once. */
async function expectCleanEnd(id: string, state = 'succeeded') {
  const j = await until(
    async () => {
      const r = await dbJob(id);
      return ['succeeded', 'failed', 'cancelled', 'expired'].includes(r.state) ? r : undefined;
    },
    45_000,
    `job ${id} to finish`,
  );
  expect(j.state).toBe(state);
  expect(j.finished_at).not.toBeNull();
  const done = j.steps.filter((s) => s.state === 'done').map((s) => s.name);
  expect(new Set(done).size).toBe(done.length);
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
});
