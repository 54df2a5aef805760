import { randomUUID } from 'node:crypto';
import { TenantScope } from '@backplane/db';
import { query } from '../../libs/db/src/sql';
import { realtimeKeys } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkerConfig } from '@backplane/config';
import { createLogger } from '@backplane/observability';
import { TelemetryMaintenance } from '../../apps/worker/src/schedules';
import { ingestWindowMs } from '../../apps/api/src/telemetry/telemetry.service';
import { addMember, createTenant, login, PASSWORD } from '../api/harness';
import { startControlPlane, type ControlPlane, type TestSite } from '../gateway/control-plane';

/**
 * Telemetry storage against the real api and PostgreSQL: the gateway ingest (validation,
 * which sites a gateway may report), downsampling and retention over synthetic samples
 * spanning nine days, the history ranges, and tenant isolation.
 */
describe('telemetry storage, downsampling and history', () => {
  let cp: ControlPlane;
  /** The worker's maintenance pass (its schedule runs it in production), default retention. */
  const maintenance = () =>
    new TelemetryMaintenance({
      db: cp.h.db,
      logger: createLogger({ app: 'worker-test', level: 'warn' }),
      config: loadWorkerConfig({ DATABASE_URL: cp.h.tdb.url, REDIS_URL: testSettings().redisUrl }),
    });
  let gwA: { id: string; credential: string };
  let gwB: { id: string; credential: string };
  let online: TestSite;
  let offline: TestSite;
  let synthetic: TestSite;
  let sub: Redis;

  async function enroll(name: string) {
    const token = await cp.enrollmentToken();
    const r = await cp.h.call('POST', '/api/v1/gateway/enroll', { body: { token, name } });
    expect(r.status).toBe(201);
    return { id: r.body.gateway.id as string, credential: r.body.credential as string };
  }

  /** What the gateway reports when a tunnel comes up (sets the site online on that gateway). */
  async function connect(site: TestSite, gw: { credential: string }) {
    const at = new Date().toISOString();
    const r = await cp.h.call('POST', '/api/v1/gateway/events', {
      token: gw.credential,
      body: { events: [{ type: 'connect', siteId: site.id, sourceIp: '198.51.100.1', at }] },
    });
    expect(r.status).toBe(200);
  }

  const sample = (siteId: string, at: Date, over: Record<string, unknown> = {}) => ({
    siteId,
    at: at.toISOString(),
    cpuLoad: 10,
    memoryUsed: 1000,
    memoryTotal: 4000,
    uptimeSeconds: 3600,
    tunnelBytesIn: 5000,
    tunnelBytesOut: 7000,
    latencyMs: 2.5,
    interfaces: [
      { name: 'ether1', rxBps: 800_000, txBps: 100_000 },
      { name: 'ether2', rxBps: 200_000, txBps: 50_000 },
    ],
    ...over,
  });

  const post = (gw: { credential: string }, samples: unknown[]) =>
    cp.h.call('POST', '/api/v1/gateway/telemetry', { token: gw.credential, body: { samples } });

  const rawCount = async (siteId: string) =>
    Number(
      (await cp.h.ds.query(`SELECT count(*) AS n FROM telemetry_samples WHERE site_id = $1`, [siteId]))[0].n as string,
    );

  const history = (siteId: string, range: string, token = cp.token, tenantId = cp.tenantId) =>
    cp.h.call('GET', `/api/v1/tenants/${tenantId}/sites/${siteId}/telemetry?range=${range}`, { token });

  beforeAll(async () => {
    cp = await startControlPlane();
    gwA = await enroll('gw-a');
    gwB = await enroll('gw-b');
    online = await cp.addSite('online', { username: 'bp-api', password: 'router-pass-1' });
    offline = await cp.addSite('offline');
    synthetic = await cp.addSite('synthetic');
    await connect(online, gwA);
    sub = new Redis(testSettings().redisUrl);
  });

  afterAll(async () => {
    sub?.disconnect();
    await cp?.close();
  });

  it('hands a gateway the router credentials of the online sites it holds, and nothing else', async () => {
    const a = await cp.h.call('GET', '/api/v1/gateway/telemetry/targets', { token: gwA.credential });
    expect(a.status).toBe(200);
    expect(a.body.targets).toEqual([
      { siteId: online.id, credentials: { username: 'bp-api', password: 'router-pass-1' } },
    ]);
    const b = await cp.h.call('GET', '/api/v1/gateway/telemetry/targets', { token: gwB.credential });
    expect(b.body.targets).toEqual([]);
    // people are not gateways
    const user = await cp.h.call('GET', '/api/v1/gateway/telemetry/targets', { token: cp.token });
    expect([401, 403]).toContain(user.status);
  });

  it('a gateway of another region gets no credentials and stores nothing for a site it claims', async () => {
    const region = await cp.h.call('POST', '/api/v1/regions', {
      token: cp.token,
      body: { slug: 'other-region', name: 'Other', publicHost: 'gw.other.test', latitude: 1, longitude: 1 },
    });
    expect(region.status).toBe(201);
    const et = await cp.h.call('POST', `/api/v1/regions/${region.body.id}/enrollment-tokens`, {
      token: cp.token,
      body: {},
    });
    const r = await cp.h.call('POST', '/api/v1/gateway/enroll', { body: { token: et.body.token, name: 'gw-rogue' } });
    expect(r.status).toBe(201);
    const rogue = { id: r.body.gateway.id as string, credential: r.body.credential as string };
    const victim = await cp.addSite('victim', { username: 'bp-api', password: 'victim-secret' });
    await cp.h.ds.query(`UPDATE sites SET region_id = $1 WHERE id = $2`, [cp.regionId, victim.id]);
    await connect(victim, rogue); // a forged connect event: the rogue gateway claims the site
    const t = await cp.h.call('GET', '/api/v1/gateway/telemetry/targets', { token: rogue.credential });
    expect(t.status).toBe(200);
    expect(t.body.targets).toEqual([]);
    const p = await post(rogue, [sample(victim.id, new Date())]);
    expect(p.status).toBe(200);
    expect(await rawCount(victim.id)).toBe(0);
    // The same site, claimed by a gateway of its own region, is polled.
    await connect(victim, gwA);
    const a = await cp.h.call('GET', '/api/v1/gateway/telemetry/targets', { token: gwA.credential });
    expect(a.body.targets).toContainEqual({
      siteId: victim.id,
      credentials: { username: 'bp-api', password: 'victim-secret' },
    });
    await cp.h.call('POST', '/api/v1/gateway/events', {
      token: gwA.credential,
      body: {
        events: [{ type: 'disconnect', siteId: victim.id, sourceIp: '198.51.100.1', at: new Date().toISOString() }],
      },
    });
  });

  it('stores a batch, emits each sample live, and ignores sites the gateway does not hold', async () => {
    const channel = realtimeKeys(cp.h.prefix).channel;
    const seen: string[] = [];
    await sub.psubscribe(`${channel}*`);
    sub.on('pmessageBuffer', (_p: Buffer, _c: Buffer, msg: Buffer) => seen.push(msg.toString('latin1')));
    const now = Date.now();
    const r = await post(gwA, [
      sample(online.id, new Date(now - 2000)),
      sample(online.id, new Date(now - 1000)),
      sample(offline.id, new Date(now - 1000)), // not online anywhere
      sample(randomUUID(), new Date(now - 1000)), // no such site
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ stored: 2, ignored: 2 });
    expect(await rawCount(online.id)).toBe(2);
    expect(await rawCount(offline.id)).toBe(0);
    // the same batch again (a gateway retry) stores nothing twice
    const again = await post(gwA, [sample(online.id, new Date(now - 2000))]);
    expect(again.body).toEqual({ stored: 0, ignored: 1 });
    // another gateway cannot report for a site it does not hold
    expect((await post(gwB, [sample(online.id, new Date(now - 500))])).body).toEqual({ stored: 0, ignored: 1 });
    expect(await rawCount(online.id)).toBe(2);
    const until = Date.now() + 2000;
    while (seen.filter((m) => m.includes(online.id)).length < 2 && Date.now() < until)
      await new Promise((res) => setTimeout(res, 20));
    expect(seen.filter((m) => m.includes(`site:${online.id}:telemetry`)).length).toBe(2);
    await sub.punsubscribe();
  });

  it('ignores samples older than the ingest window (never longer than raw retention allows)', async () => {
    const now = Date.now();
    const r = await post(gwA, [
      sample(online.id, new Date(now - 7 * 3600_000)),
      sample(online.id, new Date(now - 5 * 3600_000)),
      sample(online.id, new Date(now + 60 * 60_000)),
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ stored: 1, ignored: 2 });
    // With 3 h of raw retention a late sample may be at most 2 h old: its rollup bucket is
    // recomputed from raw rows that must all still be there.
    expect(ingestWindowMs(48)).toBe(6 * 3600_000);
    expect(ingestWindowMs(3)).toBe(2 * 3600_000);
  });

  it('refuses a malformed batch whole, with a clear error, storing nothing', async () => {
    const before = await rawCount(online.id);
    const at = new Date();
    const cases: [unknown[], string][] = [
      [[sample(online.id, at, { cpuLoad: 150 })], 'body.samples.0.cpuLoad'],
      [[sample('not-a-uuid', at)], 'body.samples.0.siteId'],
      [[sample(online.id, at, { memoryUsed: 5000 })], 'body.samples.0.memoryUsed'],
      [
        [sample(online.id, at, { interfaces: [{ name: 'e', rxBps: -1, txBps: 0 }] })],
        'body.samples.0.interfaces.0.rxBps',
      ],
      [[sample(online.id, at, { extra: 1 })], 'body.samples.0'],
      [
        [sample(online.id, new Date(at.getTime() - 10)), sample(online.id, at, { at: 'yesterday' })],
        'body.samples.1.at',
      ],
      [Array.from({ length: 501 }, (_, i) => sample(online.id, new Date(at.getTime() - i * 10))), 'body.samples'],
      [[], 'body.samples'],
    ];
    for (const [samples, path] of cases) {
      const r = await post(gwA, samples);
      expect(r.status, path).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
      expect(r.body.error.details[0].path).toBe(path);
      expect(r.body.error.message).toContain(path);
    }
    expect(await rawCount(online.id)).toBe(before);
  });

  it('stores and emits a sample repeated inside one batch once (the first copy)', async () => {
    const channel = realtimeKeys(cp.h.prefix).channel;
    const seen: string[] = [];
    const listener = (_p: Buffer, _c: Buffer, msg: Buffer) => seen.push(msg.toString('latin1'));
    await sub.psubscribe(`${channel}*`);
    sub.on('pmessageBuffer', listener);
    try {
      const at = new Date(Date.now() - 3000);
      const r = await post(gwA, [sample(online.id, at), sample(online.id, at, { cpuLoad: 99 })]);
      expect(r.body).toEqual({ stored: 1, ignored: 1 });
      const [row] = await cp.h.ds.query(`SELECT cpu_load FROM telemetry_samples WHERE site_id = $1 AND at = $2`, [
        online.id,
        at,
      ]);
      expect(row.cpu_load).toBe(10);
      const end = Date.now() + 1000;
      while (Date.now() < end) await new Promise((res) => setTimeout(res, 20));
      const live = seen.filter((m) => m.includes(`site:${online.id}:telemetry`));
      expect(live).toHaveLength(1);
    } finally {
      sub.off('pmessageBuffer', listener);
      await sub.punsubscribe();
    }
  });

  // Nine days of one sample a minute, ending now: values follow the minute index.
  const MINUTE = 60_000;
  const cpuOf = (i: number) => i % 37;
  const rxOf = (i: number) => 1000 * (i % 11);
  let end = 0;
  let startIdx = 0;

  it('downsamples nine days of synthetic samples into correct 5-minute and 1-hour averages, then applies retention', async () => {
    await connect(synthetic, gwA);
    end = Math.floor(Date.now() / MINUTE) * MINUTE;
    const n = 9 * 24 * 60;
    startIdx = end / MINUTE - n + 1;
    const tenant = cp.tenantId;
    // straight into the table, as a backfill would (the ingest accepts only recent samples)
    await cp.h.ds.query(
      `INSERT INTO telemetry_samples (tenant_id, site_id, at, cpu_load, memory_used, memory_total, latency_ms, rx_bps, tx_bps)
       SELECT $1, $2, to_timestamp(i * 60), i % 37, 1000 + i % 5, 4000, 1.5, 1000 * (i % 11), 10
         FROM generate_series($3::bigint, $4::bigint) AS i`,
      [tenant, synthetic.id, startIdx, startIdx + n - 1],
    );
    await cp.h.ds.query(
      `INSERT INTO telemetry_interface_samples (tenant_id, site_id, at, name, rx_bps, tx_bps)
       SELECT $1, $2, to_timestamp(i * 60), 'ether1', 1000 * (i % 11), 10
         FROM generate_series($3::bigint, $4::bigint) AS i`,
      [tenant, synthetic.id, startIdx, startIdx + n - 1],
    );
    const maint = maintenance();
    const res = await maint.runOnce();
    expect(res.ran).toBe(true);

    // expected buckets computed here from the same generator
    const expected = (step: number) => {
      const m = new Map<number, { cpu: number[]; rx: number[] }>();
      for (let i = startIdx; i < startIdx + n; i++) {
        const b = Math.floor((i * MINUTE) / (step * 1000)) * step * 1000;
        const e = m.get(b) ?? { cpu: [], rx: [] };
        e.cpu.push(cpuOf(i));
        e.rx.push(rxOf(i));
        m.set(b, e);
      }
      return m;
    };
    const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    for (const step of [300, 3600]) {
      const rows = await cp.h.ds.query<
        { at: string; samples: number; cpu_avg: number; cpu_max: number; rx_avg: number; rx_max: number }[]
      >(
        `SELECT extract(epoch FROM at) * 1000 AS at, samples, cpu_avg, cpu_max, rx_avg, rx_max FROM telemetry_rollups
          WHERE site_id = $1 AND step = $2 ORDER BY at`,
        [synthetic.id, step],
      );
      const exp = expected(step);
      expect(rows.length).toBeGreaterThan(step === 300 ? 2000 : 190);
      for (const r of rows) {
        const e = exp.get(Number(r.at));
        expect(e, `bucket ${r.at}`).toBeDefined();
        expect(r.samples).toBe(e!.cpu.length);
        expect(r.cpu_avg).toBeCloseTo(avg(e!.cpu), 3);
        expect(r.cpu_max).toBe(Math.max(...e!.cpu));
        expect(r.rx_avg).toBeCloseTo(avg(e!.rx), 3);
        expect(r.rx_max).toBe(Math.max(...e!.rx));
      }
      const ifRows = await cp.h.ds.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM telemetry_interface_rollups WHERE site_id = $1 AND step = $2`,
        [synthetic.id, step],
      );
      expect(ifRows[0]!.n).toBe(rows.length);
    }
    // retention: raw kept 48 h, 5-minute buckets 8 days, 1-hour buckets 90 days (all nine days)
    const [raw] = await cp.h.ds.query<{ oldest: Date; n: number }[]>(
      `SELECT min(at) AS oldest, count(*)::int AS n FROM telemetry_samples WHERE site_id = $1`,
      [synthetic.id],
    );
    expect(Date.now() - raw!.oldest.getTime()).toBeLessThanOrEqual(48 * 3600_000);
    expect(raw!.n).toBeGreaterThan(47 * 60);
    expect(raw!.n).toBeLessThanOrEqual(48 * 60);
    const [five] = await cp.h.ds.query<{ oldest: Date }[]>(
      `SELECT min(at) AS oldest FROM telemetry_rollups WHERE site_id = $1 AND step = 300`,
      [synthetic.id],
    );
    expect(Date.now() - five!.oldest.getTime()).toBeLessThanOrEqual(8 * 86_400_000);
    expect(Date.now() - five!.oldest.getTime()).toBeGreaterThan(8 * 86_400_000 - 3600_000);
    const [hour] = await cp.h.ds.query<{ oldest: Date }[]>(
      `SELECT min(at) AS oldest FROM telemetry_rollups WHERE site_id = $1 AND step = 3600`,
      [synthetic.id],
    );
    expect(Date.now() - hour!.oldest.getTime()).toBeGreaterThan(9 * 86_400_000 - 3600_000);
    // the interface rows of deleted raw samples went with them
    const [ifRaw] = await cp.h.ds.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM telemetry_interface_samples WHERE site_id = $1`,
      [synthetic.id],
    );
    expect(ifRaw!.n).toBe(raw!.n);
    // a second pass finds nothing new to roll up and nothing to delete
    const second = await maint.runOnce();
    expect(second).toMatchObject({ ran: true, deletedRaw: 0, deletedRollups: 0 });
  });

  it('runs the maintenance on one replica at a time (advisory lock)', async () => {
    // another replica in the middle of its pass: holds the lock in an open transaction
    const other = cp.h.ds.createQueryRunner();
    await other.connect();
    try {
      await other.query('BEGIN');
      const held = (await other.query(
        `SELECT buckets AS b FROM bp_telemetry_maintain(interval '48 hours', interval '8 days', interval '90 days')`,
      )) as { b: string | null }[];
      expect(held[0]!.b).not.toBeNull();
      const maint = maintenance();
      expect(await maint.runOnce()).toEqual({ ran: false, buckets: 0, deletedRaw: 0, deletedRollups: 0 });
      await other.query('COMMIT');
      expect((await maint.runOnce()).ran).toBe(true);
    } finally {
      await other.release();
    }
  });

  it('serves 1 h from raw samples in 1-minute buckets, 24 h in 5-minute and 7 d in 1-hour buckets', async () => {
    const h1 = await history(synthetic.id, '1h');
    expect(h1.status).toBe(200);
    expect(h1.body.stepSeconds).toBe(60);
    expect(h1.body.points.length).toBeGreaterThanOrEqual(59);
    expect(h1.body.points.length).toBeLessThanOrEqual(61);
    const last = h1.body.points.at(-1);
    expect(Date.parse(last.at)).toBe(end);
    expect(last.cpuLoad).toBe(cpuOf(end / MINUTE));
    expect(last.rxBps).toBe(rxOf(end / MINUTE));
    expect(h1.body.interfaces.ether1.at(-1)).toEqual({ at: last.at, rxBps: rxOf(end / MINUTE), txBps: 10 });

    const h24 = await history(synthetic.id, '24h');
    expect(h24.body.stepSeconds).toBe(300);
    expect(h24.body.points.length).toBeGreaterThanOrEqual(287);
    expect(h24.body.points.length).toBeLessThanOrEqual(289);
    for (const p of h24.body.points as { at: string }[]) expect(Date.parse(p.at) % 300_000).toBe(0);
    const full = h24.body.points[10];
    const idx = Date.parse(full.at) / MINUTE;
    const cpu = [0, 1, 2, 3, 4].map((k) => cpuOf(idx + k));
    expect(full.cpuLoad).toBeCloseTo(cpu.reduce((a, b) => a + b) / 5, 2);
    expect(full.cpuLoadMax).toBe(Math.max(...cpu));
    expect(full.samples).toBe(5);

    const d7 = await history(synthetic.id, '7d');
    expect(d7.body.stepSeconds).toBe(3600);
    expect(d7.body.points.length).toBeGreaterThanOrEqual(167);
    expect(d7.body.points.length).toBeLessThanOrEqual(169);
    expect(d7.body.interfaces.ether1.length).toBe(d7.body.points.length);
    for (const p of d7.body.points as { at: string }[]) expect(Date.parse(p.at) % 3600_000).toBe(0);

    const bad = await history(synthetic.id, '30d');
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0].path).toBe('query.range');
  });

  it('serves interfaces whatever the router named them (constructor, __proto__, toString)', async () => {
    const at = new Date(Date.now() - 4000);
    const names = ['constructor', '__proto__', 'toString', 'ether9'];
    const r = await post(gwA, [
      sample(online.id, at, { interfaces: names.map((name, i) => ({ name, rxBps: 1000 * (i + 1), txBps: 5 })) }),
    ]);
    expect(r.body).toEqual({ stored: 1, ignored: 0 });
    const h = await history(online.id, '1h');
    expect(h.status, JSON.stringify(h.body)).toBe(200);
    const got = h.body as { interfaces: Record<string, { rxBps: number }[]> };
    expect(Object.keys(got.interfaces)).toEqual(expect.arrayContaining(names));
    expect(Object.getOwnPropertyDescriptor(got.interfaces, '__proto__')?.value.at(-1).rxBps).toBe(2000);
  });

  it('is tenant-scoped: a site of another tenant is 404, a viewer may read', async () => {
    const tb = await createTenant(cp.h, cp.token, {
      slug: 'msp-b',
      name: 'MSP B',
      owner: { email: 'owner@msp-b.test', password: PASSWORD },
    });
    expect(tb.status).toBe(201);
    const tokenB = await login(cp.h, 'owner@msp-b.test');
    // B asks for A's site under its own tenant: not found (not forbidden: nothing leaks)
    const cross = await history(synthetic.id, '1h', tokenB, tb.body.id as string);
    expect(cross.status).toBe(404);
    // nor under A's tenant id (not a member: the tenant itself is not found)
    expect((await history(synthetic.id, '1h', tokenB)).status).toBe(404);
    // Row-level security on every telemetry table, not only the site check of the endpoint:
    // under B's scope A's rows are invisible; the app role cannot write them at all.
    const count = (tenantId: string, table: string) =>
      cp.h.db.inTenant(TenantScope.authenticated(tenantId), async (tx) => {
        const [r] = await query<{ n: number }>(tx, `SELECT count(*)::int AS n FROM ${table} WHERE site_id = $1`, [
          synthetic.id,
        ]);
        return r!.n;
      });
    for (const table of [
      'telemetry_samples',
      'telemetry_interface_samples',
      'telemetry_rollups',
      'telemetry_interface_rollups',
    ]) {
      expect(await count(tb.body.id as string, table), table).toBe(0);
      expect(await count(cp.tenantId, table), table).toBeGreaterThan(0);
    }
    await expect(
      cp.h.db.inTenant(TenantScope.authenticated(cp.tenantId), (tx) =>
        query(tx, `INSERT INTO telemetry_samples (tenant_id, site_id, at) VALUES ($1, $2, now())`, [
          cp.tenantId,
          synthetic.id,
        ]),
      ),
    ).rejects.toThrow(/permission denied/);
    const member = await addMember(cp.h, cp.token, cp.tenantId, {
      email: 'viewer@telemetry.test',
      role: 'viewer',
      password: PASSWORD,
    });
    expect(member.status).toBe(201);
    const viewer = await login(cp.h, 'viewer@telemetry.test');
    const v = await history(synthetic.id, '24h', viewer);
    expect(v.status).toBe(200);
    expect(v.body.points.length).toBeGreaterThan(200);
  });
});
