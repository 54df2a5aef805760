/**
 * Stopping a worker PROCESS (built JS, `dist/apps/worker/src/main.js`, as deployed) with
 * SIGTERM while it runs a job (issue 15, finding 4): it takes no new work, lets the job
 * finish (`succeeded`), releases the site lock and exits 0; a second job for the same site,
 * queued behind the first, is run by another worker right after — not a lock TTL later.
 * Routers are reached as in production: the real gateway relay (in-process gateway with the
 * fake openvpn management server) in front of a simulated router.
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
  readonly proc: ChildProcess;
  readonly port: number;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

describe('worker SIGTERM', () => {
  let cp: ControlPlane;
  let redis: Redis;
  let router: SimRouter;
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
    const w = { proc, port, output: () => out, exited };
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

  const job = async (id: string) =>
    (await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/jobs/${id}`, { token: cp.token })).body as {
      state: string;
      error: string | null;
      finishedAt: string | null;
    };
  const runCommand = async (): Promise<string> => {
    const res = await cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/sites/${site.id}/jobs`, {
      token: cp.token,
      body: { kind: 'run-command', payload: { command: '/system/identity/print' } },
    });
    if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    return res.body.id as string;
  };

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
      routerEndpoint: () => ({ host: '127.0.0.1', port: router.port }),
    });
    await gw.app.listen(gwPort, '127.0.0.1');
    const fake = gw.runtime.fake as FakeOpenVpnServer;
    await until(
      async () => {
        const out = await fake.connectTunnel({ username: site.user, password: site.password, ip: '198.51.100.9' })
          .outcome;
        return out.outcome === 'authorized';
      },
      10_000,
      'tunnel authorized',
    );
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await gw?.close().catch(() => undefined);
    await router?.stop();
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
    a.proc.kill('SIGTERM');
    const exit = await Promise.race([a.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000))]);
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
});
