/**
 * Authenticated, tenant-scoped site list (RLS on, 10,000 sites in the tenant and 10,000 in
 * another) against the real api on loopback, at a fixed request rate and flat out, next to
 * /healthz and /api/v1/me measured in the same run. Load generator: autocannon.
 */
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import { SiteListCache } from '../../apps/api/src/sites/site-list-cache';
import { startBenchApi } from './api-app';
import { headline } from './_headlines';
import type { BenchSection } from './types';

function option(name: string, fallback: number): number {
  const raw = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

const SITES = Math.floor(option('sites', 10_000));
// Fixed request rates (req/s): 50 is far below saturation; 1,000 is issue 19's p99 target rate.
const RATES = [50, 1000] as const;
const SECONDS = option('seconds', 8);
// The load generator runs in a worker thread (its own core), not on the api's event loop.
const WORKERS = Math.floor(option('load-workers', 1));
const PASSWORD = 'bench password long enough';

interface Row {
  name: string;
  mode: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

async function run(
  url: string,
  headers: Record<string, string>,
  rate: number | undefined,
  name: string,
  mode: string,
): Promise<Row> {
  const result = await autocannon({
    url,
    headers,
    connections: 16,
    duration: SECONDS,
    ...(WORKERS > 0 ? { workers: WORKERS } : {}),
    ...(rate ? { overallRate: rate } : {}),
  });
  return {
    name,
    mode,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx + result.errors + result.timeouts,
  };
}

export default async function bench(): Promise<BenchSection> {
  const api = await startBenchApi({
    API_RATE_LIMIT: '1000000',
    BOOTSTRAP_OWNER_EMAIL: 'bench@example.test',
    BOOTSTRAP_OWNER_PASSWORD: PASSWORD,
  });
  const { app, ds, config } = api;
  await app.listen(0, '127.0.0.1');
  const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  try {
    const login = (await (
      await fetch(`${base}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'bench@example.test', password: PASSWORD }),
      })
    ).json()) as { accessToken: string };
    const auth = { authorization: `Bearer ${login.accessToken}` };
    const me = (await (await fetch(`${base}/api/v1/me`, { headers: auth })).json()) as { tenants: { id: string }[] };
    const tenantId = me.tenants[0]!.id;
    // Seed as the table owner (setup only): this tenant and a neighbour, 10,000 sites each.
    const other = await ds.query<{ id: string }[]>(
      `INSERT INTO tenants (slug, name) VALUES ('neighbour', 'Neighbour') RETURNING id`,
    );
    for (const t of [tenantId, other[0]!.id]) {
      await ds.query(
        `INSERT INTO sites (tenant_id, name, tags, mgmt_address)
         SELECT $1, 'site-' || g, ARRAY['t' || (g % 10)], bp_allocate_mgmt_address() FROM generate_series(1, $2) g`,
        [t, SITES],
      );
    }
    await ds.query('ANALYZE');
    const list = `${base}/api/v1/tenants/${tenantId}/sites?limit=50`;
    const check = (await (await fetch(list, { headers: auth })).json()) as { items: unknown[] };
    if (check.items.length !== 50) throw new Error('site list did not answer 50 items');

    const rows: Row[] = [];
    for (const rate of [...RATES, undefined]) {
      const label = rate ? `${rate} req/s` : 'flat out';
      rows.push(await run(`${base}/healthz`, {}, rate, 'GET /healthz (no auth, no DB)', label));
      rows.push(await run(`${base}/api/v1/me`, auth, rate, 'GET /api/v1/me (JWT, session check)', label));
      rows.push(await run(list, auth, rate, `GET …/sites?limit=50 (JWT, membership, RLS, ${SITES} sites)`, label));
    }
    // The same list with the page cache off (auth cache still on): the cost of a miss.
    app.get(SiteListCache).bypass = true;
    rows.push(
      await run(list, auth, undefined, 'GET …/sites?limit=50, page cache off (one PostgreSQL round trip)', 'flat out'),
    );
    app.get(SiteListCache).bypass = false;
    // Let requests still in flight when autocannon stops finish before the pool closes.
    await new Promise((r) => setTimeout(r, 1500));
    const load = loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ');
    // Baseline in the same run: /healthz under the same load (throughput share flat out, p99 ratio at a fixed rate).
    const health = (mode: string) => rows.find((r) => r.mode === mode && r.name.includes('healthz'))!;
    const ratio = (r: Row) => {
      const h = health(r.mode);
      if (r === h) return 'baseline';
      return r.mode === 'flat out'
        ? `${((r.rps / h.rps) * 100).toFixed(0)} % of its req/s`
        : `p99 ${(r.p99 / Math.max(h.p99, 0.1)).toFixed(1)}×`;
    };
    const table = [
      '| Route | Load | Requests/s | p50 ms | p99 ms | non-2xx/errors | vs /healthz |',
      '| --- | --- | ---: | ---: | ---: | ---: | --- |',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.mode} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.non2xx} | ${ratio(r)} |`,
      ),
    ].join('\n');
    const healthMax = health('flat out').rps;
    const listRow = (mode: string) => rows.find((r) => r.mode === mode && r.name.includes('sites?limit=50 (JWT'))!;
    const listMax = listRow('flat out').rps;
    const list1000 = listRow('1000 req/s');
    const meMax = rows.find((r) => r.mode === 'flat out' && r.name.includes('/me'))!.rps;
    return {
      id: 'api-sites',
      title: 'API: tenant-scoped site list',
      headlines: [headline('site_list_req_per_s', Math.round(listMax))],
      markdown:
        `${table}\n\nautocannon, 16 connections, ${SECONDS} s per row, api in-process with a pool of ${config.DATABASE_POOL_SIZE} connections, ` +
        `rate limiting on (Redis) but set high. Each request makes one Redis call (rate limit, auth-cache epoch, the tenant's ` +
        `event sequence; ADR 0076) and verifies the JWT; session and membership come from the auth cache (one PostgreSQL ` +
        `round trip on a miss), and the page from the per-tenant page cache while no tenant event happened (at most 1 s), ` +
        `else one round trip that sets the non-owner role and tenant and runs the prepared list statement under RLS. ` +
        `The same token and query repeat, so the first site-list rows are the warm path; the "page cache off" row is a miss every time. ` +
        `Targets (issue 19): site list ≥ 3,000 req/s flat out (${listMax.toFixed(0)}) and p99 ≤ 25 ms at 1,000 req/s ` +
        `(${list1000.p99.toFixed(1)} ms, ${list1000.rps.toFixed(0)} req/s served); /api/v1/me ≥ 5,000 req/s flat out (${meMax.toFixed(0)}). ` +
        `The load generator runs in ${WORKERS > 0 ? `${WORKERS} worker thread(s)` : 'the api process'}. ` +
        `Flat out, the site list reaches ${((listMax / healthMax) * 100).toFixed(0)} % of the trivial route's throughput on this machine. ` +
        `Load average at the end of the run: ${load} (2 cores shared with other work, so absolute numbers are noisy; compare rows within one run).`,
    };
  } finally {
    await api.close();
  }
}
