/**
 * Exactly-once effect under faults: 1,000 events are delivered by a real worker PROCESS
 * (`dist/apps/worker/src/main.js`, its own private redis-server) to a webhook receiver that
 * fails 30 % of the requests at random. Mid-way the worker is killed with SIGKILL and a new
 * one started, and Redis is restarted empty twice (once between the workers, once under the
 * running one). Every event must arrive (2xx) at least once, duplicates only ever with the
 * same event id and the same body (receivers deduplicate on `webhook-id`), every request
 * correctly signed, and the delivery log must end with every delivery `delivered`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifySignature } from '../../apps/worker/src/alerts';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { freePort } from '../gateway/control-plane';
import { startReceiver, until, type Receiver } from './fixture';

const ROOT = resolve(__dirname, '../..');
const TOTAL = 1000;
const key = randomBytes(32);

let h: Harness;
let rx: Receiver;
let dir: string;
let redisPort: number;
let redisProc: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let workerPort: number;
let tenantId: string;
let secret: string;
let token: string;
const workerLogs: string[] = [];

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
  r.on('error', () => undefined);
  await until(
    async () => {
      try {
        await r.connect();
        await r.ping();
        return true;
      } catch {
        return false;
      } finally {
        r.disconnect();
      }
    },
    10_000,
    'private redis',
  );
}

async function stopProc(p: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((res) => {
    p.once('exit', () => res());
    p.kill(signal);
  });
}

async function startWorker(): Promise<void> {
  workerPort = await freePort();
  const p = spawn(process.execPath, ['dist/apps/worker/src/main.js'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      DATABASE_URL: h.tdb.url,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      REDIS_PREFIX: h.prefix,
      ENCRYPTION_KEYS: `test:${key.toString('base64')}`,
      JWT_SIGNING_KEY: randomBytes(48).toString('base64url'),
      TUNNEL_VERIFIER_KEY: randomBytes(32).toString('base64url'),
      DATA_DIR: dir,
      WORKER_PORT: String(workerPort),
      LOG_LEVEL: 'warn',
      BACKUP_CRON: 'off',
      OUTBOUND_ALLOW_NETWORKS: '127.0.0.0/8',
      NOTIFY_POLL_INTERVAL: '50',
      NOTIFY_RETRY_BASE: '20',
      NOTIFY_LEASE: '2000',
    },
  });
  worker = p;
  p.stdout.on('data', (d: Buffer) => workerLogs.push(d.toString()));
  p.stderr.on('data', (d: Buffer) => workerLogs.push(d.toString()));
  await until(
    async () => {
      if (p.exitCode !== null) throw new Error(`worker exited ${p.exitCode}: ${workerLogs.join('')}`);
      const r = await fetch(`http://127.0.0.1:${workerPort}/readyz`).catch(() => null);
      return r?.status === 200;
    },
    30_000,
    'worker ready',
  );
}

let emitted = 0;
async function emit(n: number): Promise<void> {
  await h.ds.query(
    `SELECT bp_outbox_emit($1, 'backup.created', 'site', NULL,
            jsonb_build_object('n', i, 'siteId', gen_random_uuid(), 'backupId', gen_random_uuid(), 'jobId', NULL))
       FROM generate_series($2::int, $3::int) AS i`,
    [tenantId, emitted + 1, emitted + n],
  );
  emitted += n;
}

/** Event ids the receiver accepted (2xx), each with the body it got. */
const accepted = new Map<string, string[]>();
let failedOnPurpose = 0;
let badSignatures = 0;

beforeAll(async () => {
  execFileSync('npm', ['run', '--silent', 'build:js'], { cwd: ROOT, stdio: 'ignore' });
  dir = mkdtempSync(join(tmpdir(), 'bp-alert-faults-'));
  h = await startApi({ ENCRYPTION_KEYS: `test:${key.toString('base64')}` });
  const boot = await bootstrap(h);
  tenantId = boot.tenantId;
  token = boot.token;
  rx = await startReceiver();
  rx.status = (r) => {
    if (!verifySignature(secret, r.headers, r.body)) {
      badSignatures++;
      return 400;
    }
    if (Math.random() < 0.3) {
      failedOnPurpose++;
      return 500;
    }
    const id = String(r.headers['webhook-id']);
    accepted.set(id, [...(accepted.get(id) ?? []), r.body]);
    return 204;
  };
  redisPort = await freePort();
  await startRedis();
}, 120_000);

afterAll(async () => {
  await stopProc(worker, 'SIGKILL');
  await stopProc(redisProc, 'SIGKILL');
  await rx?.close();
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('1,000 events through a killed worker and two Redis restarts: all delivered, none lost, duplicates only by id', async () => {
  const ch = await h.call('POST', `/api/v1/tenants/${tenantId}/channels`, {
    token,
    body: { kind: 'webhook', name: 'flaky', url: `${rx.url}/in`, events: ['backup.created'], maxConcurrency: 8 },
  });
  expect(ch.status).toBe(201);
  secret = ch.body.signingSecret as string;

  await startWorker();
  await emit(250);
  await until(() => accepted.size >= 100, 30_000, '100 delivered');
  // Kill the worker mid-delivery (its claimed deliveries keep their lease until it lapses).
  await stopProc(worker, 'SIGKILL');
  await emit(250);
  // Redis restarted empty while no worker runs.
  await stopProc(redisProc, 'SIGKILL');
  await startRedis();
  await startWorker();
  await emit(250);
  await until(() => accepted.size >= 450, 60_000, '450 delivered');
  // Redis restarted empty under the running worker.
  await stopProc(redisProc, 'SIGKILL');
  await emit(250);
  await startRedis();

  await until(() => accepted.size >= TOTAL, 120_000, `all ${TOTAL} delivered (${accepted.size})`);
  const states = await h.ds.query<
    {
      state: string;
      n: number;
    }[]
  >(`SELECT state, count(*)::int AS n FROM deliveries GROUP BY state`);
  await until(
    async () => {
      const s = await h.ds.query<
        {
          state: string;
          n: number;
        }[]
      >(`SELECT state, count(*)::int AS n FROM deliveries GROUP BY state`);
      return s.length === 1 && s[0]!.state === 'delivered' && s[0]!.n === TOTAL;
    },
    30_000,
    `every delivery recorded delivered (${JSON.stringify(states)})`,
  );

  // None lost: the receiver accepted exactly the 1,000 event ids of the outbox.
  const ids = await h.ds.query<{ id: string; n: number }[]>(`SELECT id, (data->>'n')::int AS n FROM outbox_events`);
  expect(ids).toHaveLength(TOTAL);
  expect([...accepted.keys()].sort()).toEqual(ids.map((r) => r.id).sort());
  // Duplicates only with the same id: every copy of an id has the same body, and each payload
  // number arrived under exactly one id.
  const byN = new Map<number, Set<string>>();
  let duplicates = 0;
  for (const [id, bodies] of accepted) {
    expect(new Set(bodies).size, id).toBe(1);
    duplicates += bodies.length - 1;
    const b = JSON.parse(bodies[0]!) as { id: string; data: { n: number } };
    expect(b.id).toBe(id);
    byN.set(b.data.n, (byN.get(b.data.n) ?? new Set()).add(id));
  }
  expect(byN.size).toBe(TOTAL);
  expect([...byN.values()].every((s) => s.size === 1)).toBe(true);
  expect(badSignatures).toBe(0);
  expect(failedOnPurpose).toBeGreaterThan(200);
  // Retries are in the log: attempts beyond the first for at least the failed ones.
  const [att] = await h.ds.query<{ n: number }[]>(`SELECT sum(attempts)::int AS n FROM deliveries`);
  expect(att!.n).toBeGreaterThanOrEqual(TOTAL + failedOnPurpose - duplicates);
  console.log(
    `faults: ${TOTAL} events, ${failedOnPurpose} refused on purpose, ${duplicates} duplicate deliveries (same id), ${att!.n} attempts`,
  );
}, 300_000);
