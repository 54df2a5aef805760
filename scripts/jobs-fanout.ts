/**
 * One configuration change fanned out to N simulated sites (default 10,000), twice in the
 * same run on the same fleet: first with the full `/export` before and after each job (the
 * baseline), then with only the touched menu's export (what apply-config records now):
 *   npm run build:js && node dist/scripts/jobs-fanout.js [--sites 10000] [--concurrency 200] [--sim-procs 2]
 *     [--passes full,menu]
 *
 * Real pieces: PostgreSQL (a fresh migrated test database), Redis/BullMQ (the test Redis,
 * private prefix), the api's JobsService (bulk enqueue by tag: batch row, one job row per
 * site, one BullMQ job per site), the worker's JobRunner (per-site lock, recorded steps,
 * before/after export, find-then-set). Routers: RouterOS simulators in `--sim-procs` child
 * processes, reached DIRECTLY on loopback (no gateway, no tunnel): with 10,000 tunnels the
 * OpenVPN path would dominate and is measured by the gateway benchmarks instead.
 * Addresses: each simulator process serves its routers on 127.1.x.y (one address per router)
 * at port base-port + process index (default 18728).
 * Prints: time to enqueue, time until all applied, jobs per second.
 */
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadApiConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { createDataSource, Database, TenantScope } from '@backplane/db';
import { query } from '../libs/db/src/sql';
import { connectionFromUrl } from '@backplane/jobs';
import { RealtimePublisher } from '@backplane/realtime';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { createTestDatabase, ensureLocalServices, ensureTemplateDatabase, testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { createApiApp } from '../apps/api/src/app';
import type { TenantContext } from '../apps/api/src/common/request';
import { JobsService } from '../apps/api/src/jobs/jobs.service';
import { DirectChannel } from '../apps/worker/src/jobs/channel';
import { JobRunner } from '../apps/worker/src/jobs/runner';

const USER = 'bp-api';
const PASSWORD = 'bench-router-pw';

async function startFleet(count: number, port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      'dist/apps/routeros-sim/src/cli.js',
      '--count',
      String(count),
      '--port',
      String(port),
      '--loopback',
      '--user',
      `${USER}:${PASSWORD}:full`,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    const net = import('node:net');
    const host = (i: number) => `127.1.${(i + 1) >> 8}.${(i + 1) & 255}`;
    const t0 = Date.now();
    const probe = async () => {
      const { connect } = await net;
      const ok = await new Promise<boolean>((res) => {
        const s = connect({ host: host(count - 1), port });
        s.once('connect', () => (s.destroy(), res(true)));
        s.once('error', () => res(false));
      });
      if (ok) resolve();
      else if (child.exitCode !== null) reject(new Error('simulator fleet exited'));
      else if (Date.now() - t0 > 600_000) reject(new Error('fleet did not start'));
      else setTimeout(() => void probe(), 500);
    };
    void probe();
  });
  return child;
}

/** CPU seconds (user + system) of a process from /proc; `children`: also its reaped children's. */
function cpuOf(pid: number, children = false): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = f
      .slice(f.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    // fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 after the name
    return ((v[11] ?? 0) + (v[12] ?? 0) + (children ? (v[13] ?? 0) + (v[14] ?? 0) : 0)) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds of every PostgreSQL process, exited backends included (through the postmaster's children). */
function postgresCpu(): number {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const comm = (() => {
      try {
        return readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    })();
    if (comm !== 'postgres') continue;
    const ppidComm = (() => {
      try {
        const f = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = f.slice(f.lastIndexOf(')') + 2).split(' ')[1];
        return readFileSync(`/proc/${ppid}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    })();
    // the postmaster counts its exited backends; its live children are counted one by one
    total += cpuOf(Number(d), ppidComm !== 'postgres');
  }
  return total;
}

/** Counts PostgreSQL round trips (every query a pg client sends) in this process. */
let pgQueries = 0;
const pgQuery = Reflect.get(pg.Client.prototype, 'query') as (this: pg.Client, ...a: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  pgQueries++;
  return pgQuery.apply(this, args);
} as typeof pg.Client.prototype.query;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sites: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '200' },
      'sim-procs': { type: 'string', default: '2' },
      'base-port': { type: 'string', default: '18728' },
      passes: { type: 'string', default: 'full,menu' },
      /** Seconds a pass may take from enqueue before the run fails (bounded; default 600). */
      'time-limit': { type: 'string', default: '600' },
    },
  });
  const passes = values.passes.split(',').map((p) => {
    if (p !== 'full' && p !== 'menu') throw new Error(`unknown pass ${p} (full, menu)`);
    return p;
  });
  const n = Number(values.sites);
  const procs = Number(values['sim-procs']);
  const basePort = Number(values['base-port']);
  const { redisUrl, databaseUrl } = testSettings();
  const pgUrl = new URL(databaseUrl);
  const rUrl = new URL(redisUrl);
  await ensureLocalServices(
    { host: pgUrl.hostname, port: Number(pgUrl.port || 5432) },
    { host: rUrl.hostname, port: Number(rUrl.port || 6379) },
  );
  await ensureTemplateDatabase();
  const tdb = await createTestDatabase();
  const encKey = randomBytes(32);
  const prefix = `bpbench:${randomBytes(4).toString('hex')}:`;
  const config = loadApiConfig({
    DATABASE_URL: tdb.url,
    REDIS_URL: redisUrl,
    JWT_SIGNING_KEY: randomBytes(48).toString('base64url'),
    ENCRYPTION_KEYS: `bench:${encKey.toString('base64')}`,
    TUNNEL_VERIFIER_KEY: randomBytes(32).toString('base64url'),
    LOG_LEVEL: 'warn',
  });
  const ds = createDataSource({ url: tdb.url, poolSize: 20 });
  await ds.initialize();
  const db = new Database(ds);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const keyring = new Keyring([{ id: 'bench', key: encKey }]);
  const quiet = createLogger({
    app: 'bench',
    level: 'warn',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  const { app } = await createApiApp({
    config,
    secrets: { jwtSigningKey: config.JWT_SIGNING_KEY! },
    keyring,
    db,
    redis,
    logger: quiet,
    registry: createMetricsRegistry('api'),
    checks: [],
    redisPrefix: prefix,
  });

  console.log(`starting ${n} simulated routers in ${procs} processes...`);
  const t0 = Date.now();
  const per = Math.ceil(n / procs);
  const fleets: ChildProcess[] = [];
  for (let p = 0; p < procs; p++) {
    const count = Math.min(per, n - p * per);
    if (count > 0) fleets.push(await startFleet(count, basePort + p));
  }
  console.log(`fleet up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Tenant and sites straight in SQL (setup, not measured).
  const [tenant] = await db.inPlatform((tx) =>
    query<{ id: string }>(tx, `INSERT INTO tenants (slug, name) VALUES ('bench', 'Bench') RETURNING id`),
  );
  const scope = TenantScope.authenticated(tenant!.id);
  const siteIds = await db.inTenant(scope, async (tx) => {
    const rows = await query<{ id: string }>(
      tx,
      // routeros_version: what onboarding's first poll records (the simulators run 7.16).
      `INSERT INTO sites (tenant_id, name, tags, mgmt_address, routeros_version)
       SELECT $1, 'bench-' || g, '{bench}', bp_allocate_mgmt_address(), '7.16' FROM generate_series(1, $2) g
       ORDER BY g RETURNING id`,
      [tx.tenantId, n],
    );
    return rows.map((r) => r.id);
  });
  await db.inTenant(scope, async (tx) => {
    for (let i = 0; i < siteIds.length; i += 1000) {
      const chunk = siteIds.slice(i, i + 1000);
      await query(
        tx,
        `UPDATE sites s SET router_username = $1, router_password_enc = v.enc
           FROM unnest($2::uuid[], $3::text[]) AS v(id, enc) WHERE s.id = v.id`,
        [USER, chunk, chunk.map((id) => keyring.encrypt(PASSWORD, `site:${id}:router-password`))],
      );
    }
  });
  // Process p serves routers i on 127.1.x.y (x.y = i+1) at port base-port + p.
  const where = new Map<string, { host: string; port: number }>();
  siteIds.forEach((id, k) => {
    const p = Math.floor(k / per);
    const i = k % per;
    where.set(id, { host: `127.1.${(i + 1) >> 8}.${(i + 1) & 255}`, port: basePort + p });
  });

  const jobs = app.get(JobsService);
  const t: TenantContext = {
    scope,
    role: 'owner',
    actor: { actorType: 'system', actorId: null, actorLabel: 'bench', sourceIp: null, requestId: null },
    principal: {
      kind: 'apiKey',
      apiKeyId: '00000000-0000-4000-8000-000000000000',
      tenantId: tenant!.id,
      role: 'owner',
      name: 'bench',
    },
  };
  // Each pass changes the DNS servers to something new, so every job really applies a change.
  const servers: Record<string, string[]> = {
    full: ['9.9.9.9', '149.112.112.112'],
    menu: ['1.1.1.1', '1.0.0.1'],
  };
  for (const pass of passes) {
    // A fresh runner and fresh router connections per pass.
    const channel = new DirectChannel((id) => where.get(id));
    const runner = new JobRunner(
      {
        db,
        keyring,
        channel,
        logger: quiet,
        verifierKey: Buffer.from(config.TUNNEL_VERIFIER_KEY!, 'utf8'),
        controllerUrl: 'http://127.0.0.1:1',
        pollInterval: 30,
        applyExport: pass,
        events: new RealtimePublisher({ redis, prefix }),
      },
      {
        queue: { connection: connectionFromUrl(redisUrl), prefix: `${prefix}bull` },
        redis,
        lockPrefix: prefix,
        concurrency: Number(values.concurrency),
        reconcileEveryMs: 600_000,
      },
    );
    let routerCalls = 0;
    const call = channel.call.bind(channel);
    channel.call = (...a: Parameters<typeof call>) => (routerCalls++, call(...a));
    const probe = channel.probe.bind(channel);
    channel.probe = (...a: Parameters<typeof probe>) => (routerCalls++, probe(...a));
    const cpu0 = { bench: process.cpuUsage(), sims: fleets.map((f) => cpuOf(f.pid ?? 0)), pg: postgresCpu() };
    const q0 = pgQueries;
    const e0 = Date.now();
    const { batch } = await jobs.bulk(
      t,
      { kind: 'apply-config', payload: { changes: [{ menu: 'dns', servers: servers[pass] ?? [] }] }, tags: ['bench'] },
      {
        principal: 'script:jobs-fanout',
        key: `fanout-${pass}`,
        requestHash: `fanout-${pass}`,
        route: 'script jobs-fanout',
      },
    );
    const enqueueMs = Date.now() - e0;
    console.log(
      `[${pass}] enqueued ${batch.total} jobs in ${(enqueueMs / 1000).toFixed(2)} s (${Math.round(batch.total / (enqueueMs / 1000))} jobs/s)`,
    );

    const r0 = Date.now();
    runner.start();
    let status = await jobs.batch(t, batch.id);
    let lastPrint = 0;
    const limitMs = Number(values['time-limit']) * 1000;
    while (!status.done) {
      if (Date.now() - e0 > limitMs) {
        throw new Error(
          `[${pass}] only ${status.finished}/${status.total} finished after ${values['time-limit']} s (--time-limit)`,
        );
      }
      // Polled every 250 ms: the end of "enqueue -> all applied" is known to within a quarter second.
      await new Promise((r) => setTimeout(r, 250));
      status = await jobs.batch(t, batch.id);
      if (Date.now() - lastPrint > 10_000) {
        lastPrint = Date.now();
        console.log(
          `  [${pass}] ${status.finished}/${status.total} finished after ${((Date.now() - r0) / 1000).toFixed(0)} s`,
        );
      }
    }
    const runMs = Date.now() - r0;
    const used = process.cpuUsage(cpu0.bench);
    const per = (x: number) => ((1000 * x) / status.total).toFixed(1);
    const simCpu = fleets.reduce((a, f, i) => a + cpuOf(f.pid ?? 0) - (cpu0.sims[i] ?? 0), 0);
    console.log(
      `[${pass}] per job: ${(routerCalls / status.total).toFixed(1)} router calls, ${((pgQueries - q0) / status.total).toFixed(1)} PostgreSQL round trips; CPU ms: bench process ${per((used.user + used.system) / 1e6)}, simulators ${per(simCpu)}, PostgreSQL ${per(postgresCpu() - cpu0.pg)}`,
    );
    // What one job recorded (the before/after exports) and that the change really landed.
    const [sample] = await db.inTenant(scope, (tx) =>
      query<{ id: string; before: number; after: number; result: { changed: string[] } }>(
        tx,
        `SELECT id, length(export_before_enc) AS before, length(export_after_enc) AS after, result
           FROM jobs WHERE batch_id = $1 ORDER BY id LIMIT 1`,
        [batch.id],
      ),
    );
    console.log(
      `[${pass}] all ${status.total} finished in ${(runMs / 1000).toFixed(1)} s from worker start (${(status.total / (runMs / 1000)).toFixed(0)} jobs/s, concurrency ${values.concurrency}); states ${JSON.stringify(status.states)}`,
    );
    console.log(
      `[${pass}] enqueue -> all applied: ${((Date.now() - e0) / 1000).toFixed(1)} s; recorded exports per job (encrypted) ${sample?.before ?? 0} + ${sample?.after ?? 0} bytes; changed ${JSON.stringify(sample?.result.changed ?? [])}`,
    );
    await runner.close();
    await channel.close();
  }
  await app.close();
  redis.disconnect();
  await ds.destroy();
  for (const f of fleets) f.kill('SIGTERM');
  await tdb.drop();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
