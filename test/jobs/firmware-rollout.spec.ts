/**
 * Firmware rollouts (issue 18: "rollouts in waves with canaries", ADRs 0096 and 0098): a
 * RouterOS upgrade from 7.16 to a newer simulated version, run as a rollout whose first wave
 * is one canary router. A canary that cannot reach the target halts the rollout before any
 * other router is touched; a healthy rollout upgrades every router, each with its own
 * pre-upgrade backup, the running RouterOS version and the RouterBOOT firmware verified.
 */
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutAdvancer } from '../../apps/worker/src/schedules/rollouts';
import { jobsWorld, type JobsWorld } from './fixture';

const TARGET = '7.20.2';
let w: JobsWorld;

type Rollout = {
  id: string;
  state: string;
  reason: string | null;
  counts: { succeeded: number; failed: number; open: number; notStarted: number };
  waves: { index: number; sites: number; state: string; batchId: string | null }[];
};

const getRollout = async (id: string) => (await w.api('GET', `/rollouts/${id}`)).body as Rollout;

async function tickUntil(id: string, done: (r: Rollout) => boolean, ms = 240_000): Promise<Rollout> {
  const end = Date.now() + ms;
  for (;;) {
    const a = new RolloutAdvancer({
      db: w.h.db,
      queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
      logger: createLogger({ app: 'worker-test', level: 'warn' }),
      realtime: w.events,
      channel: w.channel,
      keyring: w.keyring,
    });
    await a.tick();
    await a.close();
    const r = await getRollout(id);
    if (done(r)) return r;
    if (Date.now() > end) throw new Error(`rollout still ${r.state}: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

const board = (site: string) => w.routers.get(site)!.state.single('system/routerboard').values;

async function jobsOf(ids: readonly string[]) {
  return w.h.ds.query<
    { site_id: string; state: string; id: string; started_at: Date | null; finished_at: Date | null }[]
  >(
    `SELECT site_id, state, id, started_at, finished_at FROM jobs WHERE site_id = ANY($1::uuid[]) ORDER BY created_at`,
    [ids],
  );
}

async function sitesTagged(tag: string, n: number): Promise<string[]> {
  const ids = await Promise.all(
    Array.from({ length: n }, (_, i) => w.addSite(`${tag}-${i}`, { version: '7.16', tags: [tag] })),
  );
  await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
  // The rollout's order is the sites' id order: the first is the canary.
  return ids.sort();
}

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner(4);
}, 120_000);

afterAll(async () => {
  await w?.close();
});

describe('firmware rollout with a canary', () => {
  it('a canary that cannot reach the target halts the rollout; no other router is touched', async () => {
    const ids = await sitesTagged('fw-canary-bad', 4);
    // The canary's stable channel has moved on: it offers 7.21, not the rollout's target.
    w.routers.get(ids[0]!)!.state.releases.v7 = { ...w.routers.get(ids[0]!)!.state.releases.v7, stable: '7.21' };
    const res = await w.api('POST', '/rollouts', {
      kind: 'routeros-upgrade',
      payload: { channel: 'stable', version: TARGET },
      tags: ['fw-canary-bad'],
      waves: [1, '100%'],
      gates: { maxFailures: 0 },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const r = await tickUntil((res.body as Rollout).id, (x) => x.state !== 'running');
    expect(r.state).toBe('halted');
    expect(r.waves.map((x) => x.state)).toEqual(['failed', 'pending']);
    // Nothing beyond the canary: no job, still 7.16, RouterBOOT untouched, no backup taken.
    const jobs = await jobsOf(ids);
    expect(jobs.map((j) => j.site_id)).toEqual([ids[0]]);
    expect(jobs[0]!.state).toBe('failed');
    for (const s of ids) {
      expect(w.routers.get(s)!.version).toBe('7.16');
      expect(board(s)).toMatchObject({ 'current-firmware': '7.16' });
    }
    const backups = await w.h.ds.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM backups WHERE site_id = ANY($1::uuid[])`,
      [ids],
    );
    expect(backups[0]!.n).toBe(0);
  }, 300_000);

  it(`7.16 → ${TARGET}: the canary first, then the rest; versions verified, one pre-upgrade backup per router`, async () => {
    const ids = await sitesTagged('fw-canary-ok', 4);
    const res = await w.api('POST', '/rollouts', {
      kind: 'routeros-upgrade',
      payload: { channel: 'stable', version: TARGET },
      tags: ['fw-canary-ok'],
      waves: [1, '100%'],
      gates: { maxFailures: 0, check: { command: '/system/resource/print' } },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const done = await tickUntil((res.body as Rollout).id, (x) => x.state !== 'running');
    expect(done.state, JSON.stringify(done)).toBe('completed');
    expect(done.waves.map((x) => [x.sites, x.state])).toEqual([
      [1, 'passed'],
      [3, 'passed'],
    ]);
    const jobs = await jobsOf(ids);
    expect(jobs).toHaveLength(4);
    expect(jobs.every((j) => j.state === 'succeeded')).toBe(true);
    // The canary's upgrade had ended before any other router's started.
    const canary = jobs.find((j) => j.site_id === ids[0])!;
    for (const j of jobs.filter((x) => x.site_id !== ids[0])) {
      expect(j.started_at!.getTime()).toBeGreaterThanOrEqual(canary.finished_at!.getTime());
    }
    for (const s of ids) {
      expect(w.routers.get(s)!.version).toBe(TARGET);
      expect(board(s)).toMatchObject({ 'current-firmware': TARGET, 'upgrade-firmware': TARGET });
    }
    // Each router's pre-upgrade backup was taken by its own job, on 7.16.
    const backups = await w.h.ds.query<{ site_id: string; job_id: string; routeros_version: string }[]>(
      `SELECT site_id, job_id, routeros_version FROM backups WHERE site_id = ANY($1::uuid[])`,
      [ids],
    );
    expect(backups.map((b) => b.site_id).sort()).toEqual([...ids].sort());
    for (const b of backups) {
      expect(b.routeros_version).toBe('7.16');
      expect(jobs.find((j) => j.site_id === b.site_id)!.id).toBe(b.job_id);
    }
  }, 300_000);
});
