/**
 * The offline sweep (apps/worker/src/schedules/gateway-sweep.ts) over a fleet of online
 * sites, as the worker's schedule runs it, against PostgreSQL and Redis: a round where every site
 * is still registered (the every-30-s case), a round where a gateway died and every site is
 * lost (offline + tunnel event + realtime event each), next to an empty round (fixed cost)
 * measured in the same run.
 */
import { tunnelKey } from '@backplane/gateway-link';
import { createLogger } from '@backplane/observability';
import { RealtimePublisher } from '@backplane/realtime';
import { GatewaySweep } from '../../apps/worker/src/schedules';
import { startBenchApi } from './api-app';
import type { BenchSection } from './types';

const SITES = 5_000;
const ROUNDS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export default async function bench(): Promise<BenchSection> {
  const api = await startBenchApi({ LOG_LEVEL: 'error' }, { quiet: true });
  const { app, ds, db, redis, prefix } = api;
  await app.init();
  // the bench calls the sweep itself (no schedule)
  const sweep = new GatewaySweep(
    {
      db,
      redis,
      redisPrefix: prefix,
      logger: createLogger({ app: 'bench', level: 'error' }),
      config: { GATEWAY_DOWN_AFTER: 90 },
    },
    new RealtimePublisher({ redis, prefix }),
  );
  try {
    const [tenant] = await ds.query<{ id: string }[]>(
      `INSERT INTO tenants (slug, name) VALUES ('bench', 'Bench') RETURNING id`,
    );
    const [region] = await ds.query<{ id: string }[]>(
      `INSERT INTO regions (slug, name, public_host, public_port, latitude, longitude)
       VALUES ('bench', 'Bench', 'gw.bench', 8443, 50, 8) RETURNING id`,
    );
    const [gw] = await ds.query<{ id: string }[]>(
      `INSERT INTO gateways (region_id, name, credential_hash, last_heartbeat_at) VALUES ($1, 'gw', 'x', now()) RETURNING id`,
      [region!.id],
    );
    const empty: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      await sweep.sweepSites();
      empty.push(performance.now() - t);
    }
    const sites = await ds.query<{ id: string }[]>(
      `INSERT INTO sites (tenant_id, name, mgmt_address, online, gateway_id, region_id, last_seen_at)
       SELECT $1, 'site-' || g, inet '100.64.0.0' + (g + 1), true, $2, $3, now()
         FROM generate_series(1, $4) g RETURNING id`,
      [tenant!.id, gw!.id, region!.id, SITES],
    );
    const pipe = redis.pipeline();
    for (const s of sites) pipe.set(tunnelKey(prefix, s.id), '{}', 'EX', 600);
    await pipe.exec();

    const present: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      const r = await sweep.sweepSites();
      present.push(performance.now() - t);
      if (r?.checked !== SITES || r.offline.length !== 0)
        throw new Error(`unexpected sweep result ${JSON.stringify(r)}`);
    }
    // the gateway died: its registry entries are gone
    const del = redis.pipeline();
    for (const s of sites) del.del(tunnelKey(prefix, s.id));
    await del.exec();
    const t = performance.now();
    const lost = await sweep.sweepSites();
    const lostMs = performance.now() - t;
    if (lost?.offline.length !== SITES) throw new Error(`expected ${SITES} sites lost, got ${lost?.offline.length}`);

    const e = median(empty);
    const p = median(present);
    const rows = [
      ['empty round (no site online)', e, 1],
      [`${SITES.toLocaleString('en')} online, all registered`, p, p / e],
      [`${SITES.toLocaleString('en')} online, all lost (gateway died)`, lostMs, lostMs / e],
    ] as const;
    return {
      id: 'gateway-sweep',
      title: 'Offline sweep',
      markdown: [
        '| round | time (ms) | × empty round |',
        '| --- | ---: | ---: |',
        ...rows.map(([name, ms, ratio]) => `| ${name} | ${ms.toFixed(1)} | ${ratio.toFixed(1)} |`),
        '',
        `One sweep as the worker's schedule runs it every GATEWAY_SWEEP_INTERVAL (30 s) under its advisory lock: one query for the online sites, one Redis pipeline of EXISTS, one set-based \`bp_sites_lost\` statement for the lost sites (offline + a \`disconnect\`/\`gateway-lost\` event each), then, after the commit, one sequenced realtime \`site.status\` publish per lost site (a Redis EVAL each, in order). Median of ${ROUNDS} rounds (the lost round runs once). ${(lostMs / SITES).toFixed(2)} ms per lost site; target: a round with every site registered stays far below the 30 s interval.`,
      ].join('\n'),
    };
  } finally {
    await api.close();
  }
}
