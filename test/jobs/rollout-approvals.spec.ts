/**
 * A rollout whose change the tenant's approval policy matches waits for a second person
 * (docs/adr/0110-rollout-approvals.md): created 201 `pending_approval` with the reasons and
 * the approver role; the worker's advancer starts no wave and no router changes while it
 * waits; the requester cannot approve it, an operator (one step below the admin the policy
 * asks for) cannot, another tenant's approver does not find it; an admin's approval makes it
 * runnable and the waves change the routers; a rejected or expired one never runs.
 */
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { replaySince } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutAdvancer } from '../../apps/worker/src/schedules/rollouts';
import { addMember, createTenant, login, PASSWORD } from '../api/harness';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let admin: string;
let operator: string;
let operator2: string;
let tokenB: string;
let tenantB: string;

type Rollout = {
  id: string;
  state: string;
  reason: string | null;
  total: number;
  counts: { succeeded: number; failed: number; open: number; notStarted: number };
  waves: { index: number; sites: number; state: string }[];
  approval: {
    id: string;
    state: string;
    requiredRole: string;
    reasons: string[];
    expiresAt: string;
  } | null;
};

const as = (token: string, method: string, path: string, body?: unknown) =>
  w.h.call(method, `/api/v1/tenants/${w.tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) });

const getRollout = async (id: string) => (await w.api('GET', `/rollouts/${id}`)).body as Rollout;

const dnsOf = (siteId: string) => w.routers.get(siteId)!.state.single('ip/dns').values['servers'] ?? '';

async function jobsOfSites(ids: readonly string[]): Promise<number> {
  const [row] = await w.h.ds.query<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM jobs WHERE site_id = ANY($1::uuid[])`,
    [ids],
  );
  return row!.n;
}

/** One tick of the rollouts schedule as a worker runs it (a fresh instance: its state is in PostgreSQL only). */
async function tick(): Promise<void> {
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
}

async function tickUntil(id: string, done: (r: Rollout) => boolean, ms = 120_000): Promise<Rollout> {
  const end = Date.now() + ms;
  for (;;) {
    await tick();
    const r = await getRollout(id);
    if (done(r)) return r;
    if (Date.now() > end) throw new Error(`rollout still ${r.state}: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** `n` online sites tagged `core` (the policy's tag) and `batch` (the rollout's). */
async function coreSites(prefix: string, n: number, batch: string): Promise<string[]> {
  const ids = await Promise.all(
    Array.from({ length: n }, (_, i) => w.addSite(`${prefix}-${i}`, { tags: ['core', batch] })),
  );
  await w.h.ds.query(`UPDATE sites SET online = true WHERE id = ANY($1::uuid[])`, [ids]);
  return ids;
}

/** The operator asks for a DNS change on the sites tagged `tag`. */
async function requestRollout(tag: string, servers: string): Promise<Rollout> {
  const res = await as(operator, 'POST', '/rollouts', {
    kind: 'apply-config',
    payload: { changes: [{ menu: 'dns', servers: [servers] }] },
    tags: [tag],
    waves: [1, '100%'],
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as Rollout;
}

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner(4);
  for (const [email, role] of [
    ['approver@msp-a.test', 'admin'],
    ['operator@msp-a.test', 'operator'],
    ['operator2@msp-a.test', 'operator'],
  ] as const) {
    const m = await addMember(w.h, w.token, w.tenantId, { email, role, password: PASSWORD });
    expect(m.status).toBe(201);
  }
  admin = await login(w.h, 'approver@msp-a.test');
  operator = await login(w.h, 'operator@msp-a.test');
  operator2 = await login(w.h, 'operator2@msp-a.test');
  const tb = await createTenant(w.h, w.token, {
    slug: 'msp-b',
    name: 'MSP B',
    owner: { email: 'owner@msp-b.test', password: PASSWORD },
  });
  expect(tb.status).toBe(201);
  tenantB = tb.body.id as string;
  tokenB = await login(w.h, 'owner@msp-b.test');
  const policy = await w.api('PUT', '/approval-policy', {
    rules: [{ kinds: ['apply-config'], tags: ['core'], approverRole: 'admin' }],
    ttlSeconds: 600,
  });
  expect(policy.status).toBe(200);
}, 120_000);

afterAll(async () => {
  await w?.close();
});

describe('rollout approvals', () => {
  it('pending until an admin approves: nothing runs before; requester, operator and another tenant cannot approve', async () => {
    const sites = await coreSites('core-a', 3, 'batch-a');
    const before = sites.map(dnsOf);
    expect(before).not.toContain('9.9.9.9');

    const created = await requestRollout('batch-a', '9.9.9.9');
    expect(created.state).toBe('pending_approval');
    expect(created.approval).toMatchObject({ state: 'pending', requiredRole: 'admin' });
    expect(created.approval!.reasons.join(' ')).toMatch(/apply-config/);
    const approvalId = created.approval!.id;

    // The advancer leaves it alone: no wave starts, no job exists, no router changes.
    for (let i = 0; i < 3; i++) await tick();
    const waiting = await getRollout(created.id);
    expect(waiting.state).toBe('pending_approval');
    expect(waiting.waves.map((x) => x.state)).toEqual(['pending', 'pending']);
    expect(await jobsOfSites(sites)).toBe(0);
    expect(sites.map(dnsOf)).toEqual(before);

    // The inbox holds the request with its rollout.
    const inbox = await as(admin, 'GET', '/approvals?state=pending');
    expect(inbox.status).toBe(200);
    const item = (inbox.body.items as { id: string; rolloutId: string | null; planId: string | null }[]).find(
      (a) => a.id === approvalId,
    );
    expect(item).toMatchObject({ rolloutId: created.id, planId: null });

    // The requester cannot approve their own rollout.
    const self = await as(operator, 'POST', `/approvals/${approvalId}/approve`, {});
    expect(self.status).toBe(403);
    expect(self.body.error.message).toMatch(/two-person rule/);
    // Another operator (one step below admin) cannot either.
    const low = await as(operator2, 'POST', `/approvals/${approvalId}/approve`, {});
    expect(low.status).toBe(403);
    expect(low.body.error.message).toMatch(/needs the admin role/);
    // Another tenant's approver does not find it.
    const other = await w.h.call('POST', `/api/v1/tenants/${tenantB}/approvals/${approvalId}/approve`, {
      token: tokenB,
      body: {},
    });
    expect(other.status).toBe(404);
    expect((await w.h.call('GET', `/api/v1/tenants/${tenantB}/rollouts/${created.id}`, { token: tokenB })).status).toBe(
      404,
    );
    await tick();
    expect((await getRollout(created.id)).state).toBe('pending_approval');
    expect(await jobsOfSites(sites)).toBe(0);

    // The admin approves: the rollout becomes runnable, the waves change the routers.
    const ok = await as(admin, 'POST', `/approvals/${approvalId}/approve`, { comment: 'go' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.approval).toMatchObject({ state: 'approved', rolloutId: created.id });
    expect(ok.body.plan).toBeNull();
    expect((await getRollout(created.id)).state).toBe('running');
    const done = await tickUntil(created.id, (r) => r.state !== 'running');
    expect(done.state, JSON.stringify(done)).toBe('completed');
    expect(done.counts.succeeded).toBe(3);
    expect(done.approval).toMatchObject({ id: approvalId, state: 'approved' });
    expect(sites.map(dnsOf)).toEqual(['9.9.9.9', '9.9.9.9', '9.9.9.9']);
    // Decided once.
    expect((await as(admin, 'POST', `/approvals/${approvalId}/approve`, {})).status).toBe(409);

    // Audited (request, decision, the rollout's state change) and announced live.
    const audit = await w.api('GET', '/audit-log?limit=100');
    const actions = (audit.body.items as { action: string; target: { id: string | null } }[])
      .filter((e) => e.target.id === created.id || e.target.id === approvalId)
      .map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining(['rollout.created', 'approval.requested', 'approval.approved', 'rollout.approved']),
    );
    const replay = await replaySince(w.h.redis, w.events.keys, w.tenantId, 0);
    const states =
      replay.kind === 'events'
        ? replay.events.flatMap((e) =>
            e.type === 'rollout.progress' && e.data.rolloutId === created.id ? [e.data.state] : [],
          )
        : [];
    expect(states[0]).toBe('pending_approval');
    expect(states).toContain('running');
  }, 180_000);

  it('a rejected rollout never runs', async () => {
    const sites = await coreSites('core-b', 2, 'batch-b');
    const before = sites.map(dnsOf);
    const created = await requestRollout('batch-b', '8.8.4.4');
    expect(created.state).toBe('pending_approval');
    const rej = await as(admin, 'POST', `/approvals/${created.approval!.id}/reject`, { comment: 'not today' });
    expect(rej.status, JSON.stringify(rej.body)).toBe(200);
    expect(rej.body.state).toBe('rejected');
    const r = await getRollout(created.id);
    expect(r.state).toBe('rejected');
    expect(r.reason).toMatch(/not today/);
    expect(r.waves.map((x) => x.state)).toEqual(['cancelled', 'cancelled']);
    for (let i = 0; i < 3; i++) await tick();
    expect((await getRollout(created.id)).state).toBe('rejected');
    expect(await jobsOfSites(sites)).toBe(0);
    expect(sites.map(dnsOf)).toEqual(before);
    // Neither an approval after the rejection nor a resume brings it back.
    expect((await as(admin, 'POST', `/approvals/${created.approval!.id}/approve`, {})).status).toBe(409);
    expect((await as(admin, 'POST', `/rollouts/${created.id}/resume`, {})).status).toBe(409);
  }, 60_000);

  it('the requester may abort a rollout that waits: its request ends, it never runs', async () => {
    const sites = await coreSites('core-d', 1, 'batch-d');
    const before = sites.map(dnsOf);
    const created = await requestRollout('batch-d', '149.112.112.112');
    const abort = await as(operator, 'POST', `/rollouts/${created.id}/abort`, {});
    expect(abort.status, JSON.stringify(abort.body)).toBe(200);
    expect(abort.body.state).toBe('aborted');
    expect(abort.body.approval.state).toBe('rejected');
    expect((await as(admin, 'POST', `/approvals/${created.approval!.id}/approve`, {})).status).toBe(409);
    await tick();
    expect((await getRollout(created.id)).state).toBe('aborted');
    expect(await jobsOfSites(sites)).toBe(0);
    expect(sites.map(dnsOf)).toEqual(before);
  }, 60_000);

  it('an expired request cannot be approved and its rollout never runs', async () => {
    const sites = await coreSites('core-c', 1, 'batch-c');
    const before = sites.map(dnsOf);
    const created = await requestRollout('batch-c', '1.0.0.1');
    const approvalId = created.approval!.id;
    // Past the policy's ttl (600 s): as if the request had waited that long.
    await w.h.ds.query(`UPDATE approvals SET expires_at = now() - interval '1 second' WHERE id = $1`, [approvalId]);
    const res = await as(admin, 'POST', `/approvals/${approvalId}/approve`, {});
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('approval_expired');
    const r = await getRollout(created.id);
    expect(r.state).toBe('rejected');
    expect(r.reason).toMatch(/expired/);
    expect(r.approval!.state).toBe('expired');
    await tick();
    expect(await jobsOfSites(sites)).toBe(0);
    expect(sites.map(dnsOf)).toEqual(before);
  }, 60_000);

  it('a change the policy does not match starts running at once', async () => {
    const site = await w.addSite('edge-0', { tags: ['edge'] });
    const res = await as(operator, 'POST', '/rollouts', { kind: 'backup', payload: {}, tags: ['core'] });
    expect(res.status).toBe(201);
    expect((res.body as Rollout).state).toBe('running');
    expect((res.body as Rollout).approval).toBeNull();
    const edge = await as(operator, 'POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
      siteIds: [site],
    });
    expect(edge.status).toBe(201);
    expect((edge.body as Rollout).state).toBe('running');
    await as(operator, 'POST', `/rollouts/${(res.body as Rollout).id}/abort`, {});
    await as(operator, 'POST', `/rollouts/${(edge.body as Rollout).id}/abort`, {});
  }, 60_000);
});
