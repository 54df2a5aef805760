/**
 * Rollouts in waves (issue 18, docs/adr/0096-rollouts-in-waves.md): a change for 200
 * simulated routers runs as a canary wave and growing waves; a fault in wave 2 halts the
 * rollout with the sites of later waves untouched (no job, no router change); resume after
 * the fault is cleared completes it. Pause stops before the next wave, abort cancels pending
 * waves, another tenant's rollout is not found, a viewer cannot start one.
 */
import type { RolloutProgressData, TenantEventInput } from '@backplane/contracts';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutAdvancer } from '../../apps/worker/src/schedules/rollouts';
import { addMember, createTenant, login } from '../api/harness';
import { jobsWorld, ROUTER_USER, type JobsWorld } from './fixture';

const SITES = 200;
let w: JobsWorld;
let sites: string[];
/** The rollout.progress events the worker published. */
const progress: RolloutProgressData[] = [];

const dnsOf = (siteId: string) => w.routers.get(siteId)!.state.single('ip/dns').values['servers'] ?? '';

/** The rollouts schedule as a worker runs it (a fresh instance each time: its state is in PostgreSQL only). */
function advancer(): RolloutAdvancer {
  return new RolloutAdvancer({
    db: w.h.db,
    queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
    logger: createLogger({ app: 'worker-test', level: 'warn' }),
    realtime: {
      publish: (tenantId: string, e: TenantEventInput) => {
        if (e.type === 'rollout.progress') progress.push(e.data);
        return w.events.publish(tenantId, e);
      },
    },
    channel: w.channel,
    keyring: w.keyring,
  });
}

type Rollout = {
  id: string;
  state: string;
  reason: string | null;
  total: number;
  currentWave: number;
  counts: { succeeded: number; failed: number; open: number; notStarted: number };
  waves: { index: number; sites: number; state: string; attempt: number; batchId: string | null; gate: unknown }[];
};

const getRollout = async (id: string) => (await w.api('GET', `/rollouts/${id}`)).body as Rollout;

/** Ticks the schedule until `done` holds for the rollout (each tick a fresh advancer, as after a kill -9). */
async function tickUntil(id: string, done: (r: Rollout) => boolean, ms = 180_000): Promise<Rollout> {
  const end = Date.now() + ms;
  for (;;) {
    const a = advancer();
    await a.tick();
    await a.close();
    const r = await getRollout(id);
    if (done(r)) return r;
    if (Date.now() > end) throw new Error(`rollout still ${r.state}: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

async function jobsOfSites(ids: readonly string[]): Promise<number> {
  const [row] = await w.h.ds.query<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM jobs WHERE site_id = ANY($1::uuid[])`,
    [ids],
  );
  return row!.n;
}

/** The bp-api user may read only: every change traps with a permission error (a router an admin broke). */
function breakRouter(siteId: string, broken: boolean): void {
  const r = w.routers.get(siteId)!;
  r.state.update('user', r.state.find('user', { name: ROUTER_USER.name })!, { group: broken ? 'read' : 'full' });
}

beforeAll(async () => {
  w = await jobsWorld();
  sites = [];
  for (let i = 0; i < SITES; i += 20) {
    sites.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(20, SITES - i) }, (_, k) => w.addSite(`wave-${i + k}`, { tags: ['fleet'] })),
      )),
    );
  }
  // The control plane's view: every site online (the gateways would report it).
  await w.h.ds.query(`UPDATE sites SET online = true WHERE tenant_id = $1`, [w.tenantId]);
  // The rollout's order is the sites' id order.
  sites.sort();
  w.startRunner(8);
}, 300_000);

afterAll(async () => {
  await w?.close();
});

describe('rollout in waves', () => {
  it('200 sites, a fault in wave 2: halts with the rest untouched; resume after the fix completes', async () => {
    const before = dnsOf(sites[0]!);
    expect(before).not.toBe('9.9.9.9');
    // Waves: 1 site, up to 10 % (20), 50 % (100), all: wave 2 holds sites[1..19].
    const wave2 = sites.slice(1, 20);
    const broken = [wave2[2]!, wave2[7]!, wave2[11]!];
    for (const s of broken) breakRouter(s, true);

    const res = await w.api(
      'POST',
      '/rollouts',
      {
        kind: 'apply-config',
        payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
        tags: ['fleet'],
        waves: [1, '10%', '50%', '100%'],
        gates: { maxFailures: 1, check: { command: '/system/resource/print' } },
      },
      { 'idempotency-key': 'rollout-200' },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const created = res.body as Rollout;
    expect(created.state).toBe('running');
    expect(created.waves.map((x) => x.sites)).toEqual([1, 19, 80, 100]);
    // Nothing runs before the worker starts the first wave.
    expect(await jobsOfSites(sites)).toBe(0);
    // The same request again: the same rollout, nothing new.
    const again = await w.api(
      'POST',
      '/rollouts',
      {
        kind: 'apply-config',
        payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
        tags: ['fleet'],
        waves: [1, '10%', '50%', '100%'],
        gates: { maxFailures: 1, check: { command: '/system/resource/print' } },
      },
      { 'idempotency-key': 'rollout-200' },
    );
    expect(again.status).toBe(200);
    expect((again.body as Rollout).id).toBe(created.id);

    const halted = await tickUntil(created.id, (r) => r.state !== 'running');
    expect(halted.state).toBe('halted');
    expect(halted.reason).toMatch(/^wave 2: 3 of 19 sites failed the health gates \(3 job failed\); at most 1 allowed/);
    expect(halted.waves.map((x) => x.state)).toEqual(['passed', 'failed', 'pending', 'pending']);
    expect(halted.counts).toMatchObject({ succeeded: 17, failed: 3, open: 0, notStarted: 180 });
    // The rest is untouched: no job for the sites of waves 3 and 4, no change on their routers.
    const rest = sites.slice(20);
    expect(await jobsOfSites(rest)).toBe(0);
    expect(rest.filter((s) => dnsOf(s) !== before)).toEqual([]);
    expect(broken.map(dnsOf)).toEqual([before, before, before]);
    expect(dnsOf(sites[0]!)).toBe('9.9.9.9');
    // Halted stays halted: more ticks start nothing.
    for (let i = 0; i < 3; i++) await advancer().tick();
    expect(await jobsOfSites(rest)).toBe(0);

    // Fix the routers, resume: wave 2 runs again for its failed sites, then waves 3 and 4.
    for (const s of broken) breakRouter(s, false);
    const resumed = await w.api('POST', `/rollouts/${created.id}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect((resumed.body as Rollout).state).toBe('running');
    const done = await tickUntil(created.id, (r) => r.state !== 'running', 300_000);
    expect(done.state, JSON.stringify(done)).toBe('completed');
    expect(done.waves.map((x) => x.state)).toEqual(['passed', 'passed', 'passed', 'passed']);
    expect(done.waves[1]!.attempt).toBe(1);
    expect(done.counts).toMatchObject({ succeeded: SITES, failed: 0, open: 0, notStarted: 0 });
    expect(sites.filter((s) => dnsOf(s) !== '9.9.9.9')).toEqual([]);
    // One successful job per site (the three fixed sites: a failed one and a succeeded one).
    expect(await jobsOfSites(sites)).toBe(SITES + broken.length);

    // Progress was streamed: rollout.progress events for this rollout, the last one completed.
    const evs = progress.filter((e) => e.rolloutId === created.id);
    expect(evs.length).toBeGreaterThan(3);
    expect(evs.find((e) => e.state === 'halted')).toMatchObject({ wave: 1, succeeded: 17, failed: 3 });
    expect(evs.at(-1)).toMatchObject({ state: 'completed', succeeded: SITES });
    // Audited.
    const [audit] = await w.h.ds.query<{ actions: string[] }[]>(
      `SELECT array_agg(action ORDER BY created_at) AS actions FROM audit_log WHERE target_id = $1`,
      [created.id],
    );
    expect(audit!.actions).toEqual(
      expect.arrayContaining([
        'rollout.created',
        'rollout.wave_started',
        'rollout.halted',
        'rollout.resumed',
        'rollout.completed',
      ]),
    );
  }, 600_000);

  it('pause stops before the next wave; resume goes on', async () => {
    const ids = await Promise.all([0, 1, 2, 3].map((i) => w.addSite(`pause-${i}`, { tags: ['pause'] })));
    await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
    ids.sort();
    const res = await w.api('POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'paused-rollout' }] },
      tags: ['pause'],
      waves: [1, 2, 4],
    });
    expect(res.status).toBe(201);
    const id = (res.body as Rollout).id;
    await tickUntil(id, (r) => r.waves[0]!.state === 'running');
    const paused = await w.api('POST', `/rollouts/${id}/pause`);
    expect((paused.body as Rollout).state).toBe('paused');
    // The running wave finishes and its gates pass, but the next wave does not start.
    const r = await tickUntil(id, (x) => x.waves[0]!.state === 'passed');
    expect(r.state).toBe('paused');
    for (let i = 0; i < 3; i++) await advancer().tick();
    expect((await getRollout(id)).waves[1]!.state).toBe('pending');
    expect(await jobsOfSites(ids.slice(1))).toBe(0);
    expect(w.routers.get(ids[3]!)!.state.single('system/identity').values['name']).not.toBe('paused-rollout');
    // Pausing twice: 409.
    expect((await w.api('POST', `/rollouts/${id}/pause`)).status).toBe(409);
    expect((await w.api('POST', `/rollouts/${id}/resume`)).status).toBe(200);
    const done = await tickUntil(id, (x) => x.state !== 'running');
    expect(done.state).toBe('completed');
    expect(ids.map((s) => w.routers.get(s)!.state.single('system/identity').values['name'])).toEqual(
      ids.map(() => 'paused-rollout'),
    );
  }, 120_000);

  it('abort cancels pending waves: their sites get no job', async () => {
    const ids = await Promise.all([0, 1, 2, 3, 4].map((i) => w.addSite(`abort-${i}`, { tags: ['abort'] })));
    await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
    ids.sort();
    const res = await w.api('POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'aborted-rollout' }] },
      siteIds: ids,
      waves: { canary: 1, factor: 2 },
    });
    expect(res.status).toBe(201);
    const id = (res.body as Rollout).id;
    expect((res.body as Rollout).waves.map((x) => x.sites)).toEqual([1, 2, 2]);
    await tickUntil(id, (r) => r.waves[0]!.state === 'passed' || r.waves[1]!.state === 'running');
    const aborted = await w.api('POST', `/rollouts/${id}/abort`);
    expect(aborted.status).toBe(200);
    expect((aborted.body as Rollout).state).toBe('aborted');
    expect((aborted.body as Rollout).waves.at(-1)!.state).toBe('cancelled');
    // The wave that was running (if any) is cancelled too; none is left running.
    for (const x of (aborted.body as Rollout).waves) expect(['passed', 'cancelled']).toContain(x.state);
    for (let i = 0; i < 3; i++) await advancer().tick();
    const after = await getRollout(id);
    expect(after.state).toBe('aborted');
    expect(await jobsOfSites(ids.slice(3))).toBe(0);
    expect(ids.slice(3).map((s) => w.routers.get(s)!.state.single('system/identity').values['name'])).not.toContain(
      'aborted-rollout',
    );
    expect((await w.api('POST', `/rollouts/${id}/resume`)).status).toBe(409);
  }, 120_000);

  it('health gates beyond job outcomes: a site offline after its job, a failing check command', async () => {
    const ids = await Promise.all([0, 1, 2].map((i) => w.addSite(`gate-${i}`, { tags: ['gate'] })));
    ids.sort();
    // The first site is offline as the control plane sees it (its job still reaches it directly).
    await w.h.ds.query(`UPDATE sites SET online = (id <> $2) WHERE id = ANY($1::uuid[])`, [ids, ids[0]]);
    const offline = await w.api('POST', '/rollouts', {
      kind: 'backup',
      payload: {},
      tags: ['gate'],
      waves: [1, '100%'],
    });
    const a = await tickUntil((offline.body as Rollout).id, (r) => r.state !== 'running');
    expect(a.state).toBe('halted');
    expect(a.reason).toMatch(/^wave 1: 1 of 1 sites failed the health gates \(1 offline\)/);
    expect(a.counts).toMatchObject({ succeeded: 1, notStarted: 2 });

    await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
    const check = await w.api('POST', '/rollouts', {
      kind: 'backup',
      payload: {},
      tags: ['gate'],
      waves: [1, '100%'],
      gates: { check: { command: '/no-such-menu/print' } },
    });
    expect(check.status, JSON.stringify(check.body)).toBe(201);
    const b = await tickUntil((check.body as Rollout).id, (r) => r.state !== 'running');
    expect(b.state).toBe('halted');
    expect(b.reason).toMatch(/\(1 check failed\)/);
    expect((b.waves[0]!.gate as { examples: { reason: string }[] }).examples[0]!.reason).toMatch(/^check failed: /);
  }, 120_000);

  it('a wave starts once even when two workers tick at the same time', async () => {
    const ids = await Promise.all([0, 1, 2].map((i) => w.addSite(`race-${i}`, { tags: ['race'] })));
    await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
    const res = await w.api('POST', '/rollouts', {
      kind: 'backup',
      payload: {},
      tags: ['race'],
      waves: ['100%'],
    });
    const id = (res.body as Rollout).id;
    const tenant = w.tenantId;
    const [a, b] = [advancer(), advancer()];
    // The advisory lock is bypassed on purpose: both advance the same rollout at once.
    await Promise.all([a.advance(tenant, id), b.advance(tenant, id), a.advance(tenant, id)]);
    await a.close();
    await b.close();
    expect(await jobsOfSites(ids)).toBe(3);
    const done = await tickUntil(id, (x) => x.state !== 'running');
    expect(done.state).toBe('completed');
    expect(await jobsOfSites(ids)).toBe(3);
  }, 120_000);

  it('a worker that dies after starting a wave but before enqueueing: the jobs still run, the rollout completes', async () => {
    const ids = await Promise.all([0, 1].map((i) => w.addSite(`lost-${i}`, { tags: ['lost'] })));
    await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
    const res = await w.api('POST', '/rollouts', { kind: 'backup', payload: {}, tags: ['lost'], waves: ['100%'] });
    const id = (res.body as Rollout).id;
    // Its enqueue goes nowhere (a queue no runner reads): as if it died right after the commit.
    const dying = new RolloutAdvancer({
      db: w.h.db,
      queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}lost` },
      logger: createLogger({ app: 'worker-test', level: 'warn' }),
      realtime: w.events,
      channel: w.channel,
      keyring: w.keyring,
    });
    await dying.advance(w.tenantId, id);
    await dying.close();
    expect((await getRollout(id)).waves[0]!.state).toBe('running');
    expect(await jobsOfSites(ids)).toBe(2);
    // The job runner's reconciler re-adds the open jobs; the next worker's ticks finish the rollout.
    const done = await tickUntil(id, (x) => x.state !== 'running', 60_000);
    expect(done.state).toBe('completed');
    expect(done.counts.succeeded).toBe(2);
    expect(await jobsOfSites(ids)).toBe(2);
  }, 120_000);

  it('input, roles and tenants: bad waves 400, write check command 400, viewer 403, other tenant 404', async () => {
    const bad = await w.api('POST', '/rollouts', {
      kind: 'backup',
      payload: {},
      tags: ['race'],
      waves: ['150%'],
    });
    expect(bad.status).toBe(400);
    const write = await w.api('POST', '/rollouts', {
      kind: 'backup',
      payload: {},
      tags: ['race'],
      gates: { check: { command: '/system/reboot' } },
    });
    expect(write.status).toBe(400);
    const none = await w.api('POST', '/rollouts', { kind: 'backup', payload: {}, tags: ['nothing-has-this'] });
    expect(none.status).toBe(422);

    const list = await w.api('GET', '/rollouts');
    expect(list.status).toBe(200);
    const all = (list.body as { items: Rollout[] }).items;
    const someId = all[0]!.id;
    // Newest first, by keyset pages.
    const p1 = (await w.api('GET', '/rollouts?limit=2')).body as { items: Rollout[]; nextCursor: string };
    const p2 = (await w.api('GET', `/rollouts?limit=2&cursor=${p1.nextCursor}`)).body as { items: Rollout[] };
    expect([...p1.items, ...p2.items].map((r) => r.id)).toEqual(all.slice(0, 4).map((r) => r.id));

    const added = await addMember(w.h, w.token, w.tenantId, { email: 'viewer@msp-a.test', role: 'viewer' });
    expect(added.status).toBe(201);
    const viewer = await login(w.h, 'viewer@msp-a.test');
    const call = (method: string, path: string, token: string, body?: unknown) =>
      w.h.call(method, `/api/v1/tenants/${w.tenantId}${path}`, { token, ...(body ? { body } : {}) });
    expect((await call('POST', '/rollouts', viewer, { kind: 'backup', payload: {}, tags: ['race'] })).status).toBe(403);
    expect((await call('POST', `/rollouts/${someId}/pause`, viewer)).status).toBe(403);
    expect((await call('GET', `/rollouts/${someId}`, viewer)).status).toBe(200);

    const t = await createTenant(w.h, w.token, {
      slug: 'msp-b',
      name: 'MSP B',
      owner: { email: 'owner@msp-b.test' },
    });
    expect(t.status).toBe(201);
    const otherToken = await login(w.h, 'owner@msp-b.test');
    const otherTenant = t.body.id as string;
    const other = (method: string, path: string) =>
      w.h.call(method, `/api/v1/tenants/${otherTenant}${path}`, { token: otherToken });
    expect((await other('GET', `/rollouts/${someId}`)).status).toBe(404);
    expect((await other('POST', `/rollouts/${someId}/abort`)).status).toBe(404);
    expect((await getRollout(someId)).state).not.toBe('aborted');
  }, 60_000);
});
