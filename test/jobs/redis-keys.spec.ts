/**
 * Redis holds nothing unbounded for jobs (issue 15 finding 5): after 1,000 jobs ending in
 * every terminal state (succeeded, failed, cancelled before they ever ran, expired while
 * waiting for an offline site) the worker's `jobwaits` hash is empty and no other key of
 * the app was added, apart from BullMQ's finished-job records (capped by the queue's
 * removeOnComplete / removeOnFail). Handlers and the router channel are stand-ins: this is
 * about the bookkeeping around them, not routers.
 */
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings, until } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRunner } from '../../apps/worker/src/jobs/runner';
import { HANDLERS, type HandlerRegistry } from '../../apps/worker/src/jobs/registry';
import { jobsWorld, type JobsWorld } from './fixture';

const GROUPS = { ok: 100, bad: 50, off: 50, exp: 50 } as const;
const PER_SITE = 4;

describe('Redis keys stay bounded across 1,000 mixed jobs', () => {
  let w: JobsWorld;
  let runner: JobRunner;
  const groupOf = new Map<string, keyof typeof GROUPS>();

  beforeAll(async () => {
    w = await jobsWorld();
    for (const [group, n] of Object.entries(GROUPS) as [keyof typeof GROUPS, number][]) {
      for (let i = 0; i < n; i++) {
        const site = await w.api('POST', '/sites', { name: `${group}-${i}`, tags: [group] });
        const id = site.body.id as string;
        const c = await w.api('PUT', `/sites/${id}/router-credentials`, { username: 'bp-api', password: 'x-secret-1' });
        expect(c.status).toBe(204);
        groupOf.set(id, group);
      }
    }
  }, 120_000);
  afterAll(async () => {
    await runner?.close();
    await w?.close();
  });

  it('jobwaits is empty and no app key is left behind', async () => {
    const fake = (ctx: { target: { siteId: string } }) =>
      groupOf.get(ctx.target.siteId) === 'bad'
        ? Promise.reject(new Error('router said no'))
        : Promise.resolve({ ok: true });
    const handlers = Object.fromEntries(Object.keys(HANDLERS).map((k) => [k, fake])) as unknown as HandlerRegistry;
    const channel = {
      tunnels: false,
      call: () => Promise.reject(new Error('no router here')),
      connectedSince: (siteId: string) => {
        const g = groupOf.get(siteId);
        return Promise.resolve(g === 'off' || g === 'exp' ? undefined : new Date(0));
      },
    };
    const r = w.h.redis;
    const appKeys = async () => (await r.keys(`${w.h.prefix}*`)).filter((k) => !k.startsWith(`${w.h.prefix}bull:`));
    const before = await appKeys();

    runner = new JobRunner(
      {
        db: w.h.db,
        keyring: w.keyring,
        channel,
        events: w.events,
        logger: createLogger({ app: 'worker-test', level: 'error' }),
        verifierKey: Buffer.from(w.verifierKey, 'utf8'),
        controllerUrl: w.base,
        pollInterval: 30,
      },
      {
        queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
        redis: r,
        lockPrefix: w.h.prefix,
        concurrency: 32,
        reconcileEveryMs: 1000,
        lockDurationMs: 4000,
        handlers,
      },
    );
    runner.start();

    const ids: Record<string, string[]> = { ok: [], bad: [], off: [], exp: [] };
    for (const group of Object.keys(GROUPS)) {
      for (let i = 0; i < PER_SITE; i++) {
        const res = await w.api('POST', '/jobs/bulk', { kind: 'backup', tags: [group], payload: { reason: 'manual' } });
        expect(res.status).toBe(201);
        const rows = await w.h.ds.query<{ id: string }[]>(`SELECT id FROM jobs WHERE batch_id = $1`, [
          res.body.batch.id,
        ]);
        ids[group]!.push(...rows.map((j) => j.id));
      }
    }
    expect(Object.values(ids).flat()).toHaveLength(1000);

    const states = async (group: string) => {
      const rows = await w.h.ds.query<{ state: string; n: number }[]>(
        `SELECT state, count(*)::int AS n FROM jobs WHERE id = ANY($1) GROUP BY state`,
        [ids[group]],
      );
      return Object.fromEntries(rows.map((x) => [x.state, x.n]));
    };
    // Offline sites' jobs wait (each has a wait counter) ...
    await until(
      async () => (await states('off'))['waiting'] === 200 && (await states('exp'))['waiting'] === 200,
      90_000,
      'offline jobs waiting',
      250,
    );
    expect(await r.hlen(`${w.h.prefix}jobwaits`)).toBeGreaterThan(0);
    // ... then half are cancelled by the api (never started) and half expire.
    for (const id of ids['off']!) expect((await w.api('POST', `/jobs/${id}/cancel`)).status).toBe(200);
    await w.h.ds.query(`UPDATE jobs SET expires_at = now() WHERE id = ANY($1)`, [ids['exp']]);

    await until(
      async () =>
        (await states('ok'))['succeeded'] === 400 &&
        (await states('bad'))['failed'] === 200 &&
        (await states('off'))['cancelled'] === 200 &&
        (await states('exp'))['expired'] === 200,
      120_000,
      'every job terminal',
      250,
    );
    // One reconcile pass later (1 s) nothing of these jobs is left in the hash.
    await until(async () => (await r.hlen(`${w.h.prefix}jobwaits`)) === 0, 10_000, 'jobwaits empty').catch(
      () => undefined,
    );
    const fields = await r.hlen(`${w.h.prefix}jobwaits`);
    const after = await appKeys();
    const bull = (await r.keys(`${w.h.prefix}bull:*`)).length;
    console.log(
      `redis after 1,000 jobs: jobwaits fields ${fields}, app keys ${before.length} -> ${after.length}, bullmq keys ${bull}`,
    );
    expect(fields).toBe(0);
    expect(after.filter((k) => !before.includes(k) && !k.includes('joblock:') && !k.includes('realtime'))).toEqual([]);
  }, 300_000);
});
