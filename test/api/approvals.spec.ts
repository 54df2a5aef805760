/**
 * Approvals, the two-person rule (docs/adr/0089-approvals.md): a change the tenant's policy
 * names waits for another person with the required role; the requester cannot approve it,
 * one role lower cannot, an expired request cannot be approved, another tenant's id is
 * unknown (404); an approved change applies on the router; everything is audited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsWorld, type JobsWorld } from '../jobs/fixture';
import { addMember, createTenant, login, PASSWORD } from './harness';

let w: JobsWorld;
let admin: string;
let operator: string;
let tokenB: string;
let tenantB: string;

type Plan = { id: string; ready: boolean; state: string; approvalId: string | null; sites: { status: string }[] };

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner();
  for (const [email, role] of [
    ['approver@msp-a.test', 'admin'],
    ['operator@msp-a.test', 'operator'],
  ] as const) {
    const m = await addMember(w.h, w.token, w.tenantId, { email, role, password: PASSWORD });
    expect(m.status).toBe(201);
  }
  admin = await login(w.h, 'approver@msp-a.test');
  operator = await login(w.h, 'operator@msp-a.test');
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
}, 90_000);

afterAll(async () => {
  await w?.close();
});

const as = (token: string, method: string, path: string, body?: unknown) =>
  w.h.call(method, `/api/v1/tenants/${w.tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) });

async function readyPlan(site: string, name: string): Promise<Plan> {
  const created = await w.api('POST', '/plans', {
    kind: 'apply-config',
    payload: { changes: [{ menu: 'identity', name }] },
    siteIds: [site],
  });
  expect(created.status).toBe(201);
  const end = Date.now() + 20_000;
  for (;;) {
    const p = (await w.api('GET', `/plans/${created.body.id as string}`)).body as Plan;
    if (p.ready) return p;
    if (Date.now() > end) throw new Error(`plan not ready: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The owner (founder) asks to apply; the policy makes it wait for an admin. */
async function requestApproval(site: string, name: string): Promise<{ plan: Plan; approvalId: string }> {
  const plan = await readyPlan(site, name);
  const res = await w.api('POST', `/plans/${plan.id}/apply`, {});
  expect(res.status).toBe(202);
  expect(res.body.approval.state).toBe('pending');
  expect(res.body.approval.requiredRole).toBe('admin');
  expect(res.body.plan.state).toBe('pending_approval');
  return { plan, approvalId: res.body.approval.id as string };
}

describe('approvals', () => {
  it('requester cannot approve; one role lower cannot; another person with the role approves and the change applies', async () => {
    const site = await w.addSite('core-1', { tags: ['core'] });
    const router = w.routers.get(site)!;
    const { plan, approvalId } = await requestApproval(site, 'approved-name');

    // Pending: nothing ran, the plan shows what it would do, the inbox counts it.
    const inbox = await as(operator, 'GET', '/approvals?state=pending');
    expect(inbox.status).toBe(200);
    expect(inbox.body.counts.pending).toBe(1);
    expect(inbox.body.items[0].id).toBe(approvalId);
    expect(inbox.body.items[0].plan.sites[0].changes).toEqual([
      { menu: '/system/identity', item: '', property: 'name', before: 'MikroTik', after: 'approved-name' },
    ]);
    expect(router.state.single('system/identity').values['name']).toBe('MikroTik');
    // Applying again while it waits: 409 approval_required.
    const again = await w.api('POST', `/plans/${plan.id}/apply`, {});
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('approval_required');

    // The requester (an owner, role high enough) cannot approve their own change.
    const self = await w.api('POST', `/approvals/${approvalId}/approve`, {});
    expect(self.status).toBe(403);
    expect(self.body.error.message).toMatch(/two-person rule/);
    // An operator (one step below admin) cannot approve.
    const low = await as(operator, 'POST', `/approvals/${approvalId}/approve`, {});
    expect(low.status).toBe(403);
    expect(low.body.error.message).toMatch(/needs the admin role/);

    const ok = await as(admin, 'POST', `/approvals/${approvalId}/approve`, { comment: 'looks right' });
    expect(ok.status).toBe(200);
    expect(ok.body.approval.state).toBe('approved');
    const end = Date.now() + 20_000;
    while ((router.state.single('system/identity').values['name'] as string) !== 'approved-name') {
      if (Date.now() > end) throw new Error('approved change did not apply');
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = (await w.api('GET', `/plans/${plan.id}`)).body as Plan & { applyBatchId: string };
    expect(after.state).toBe('applied');
    // The job runs as the requester asked it (owner), approved by the admin (audited).
    const audit = await w.api('GET', '/audit-log?limit=50');
    const actions = (audit.body.items as { action: string }[]).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['approval.requested', 'approval.approved', 'plan.applied']));
    // Decided once: a second approval is a conflict.
    const twice = await as(admin, 'POST', `/approvals/${approvalId}/approve`, {});
    expect(twice.status).toBe(409);
  }, 60_000);

  it('an expired approval cannot be approved and nothing is applied', async () => {
    const site = await w.addSite('core-2', { tags: ['core'] });
    const { plan, approvalId } = await requestApproval(site, 'too-late');
    await w.h.ds.query(`UPDATE approvals SET expires_at = now() - interval '1 second' WHERE id = $1`, [approvalId]);
    const res = await as(admin, 'POST', `/approvals/${approvalId}/approve`, {});
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('approval_expired');
    const inbox = await as(admin, 'GET', '/approvals?state=expired');
    expect(inbox.body.items.map((a: { id: string }) => a.id)).toContain(approvalId);
    expect(inbox.body.counts.expired).toBeGreaterThanOrEqual(1);
    const p = (await w.api('GET', `/plans/${plan.id}`)).body as Plan;
    expect(p.state).toBe('open');
    await new Promise((r) => setTimeout(r, 500));
    expect(w.routers.get(site)!.state.single('system/identity').values['name']).toBe('MikroTik');
  }, 60_000);

  it("another tenant's approval id is 404; a rejected plan cannot be applied; a site without the tag needs no approval", async () => {
    const site = await w.addSite('core-3', { tags: ['core'] });
    const { plan, approvalId } = await requestApproval(site, 'rejected-name');
    const other = await w.h.call('POST', `/api/v1/tenants/${tenantB}/approvals/${approvalId}/approve`, {
      token: tokenB,
      body: {},
    });
    expect(other.status).toBe(404);
    const otherGet = await w.h.call('GET', `/api/v1/tenants/${tenantB}/plans/${plan.id}`, { token: tokenB });
    expect(otherGet.status).toBe(404);

    const rej = await as(admin, 'POST', `/approvals/${approvalId}/reject`, { comment: 'not now' });
    expect(rej.status).toBe(200);
    expect(rej.body.state).toBe('rejected');
    const apply = await w.api('POST', `/plans/${plan.id}/apply`, {});
    expect(apply.status).toBe(409);

    // The policy cannot be bypassed by asking for the job directly (single or bulk): 409.
    const direct1 = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'sneaky' }] },
    });
    expect(direct1.status).toBe(409);
    expect(direct1.body.error.code).toBe('approval_required');
    const bulk = await w.api('POST', '/jobs/bulk', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'sneaky' }] },
      tags: ['core'],
    });
    expect(bulk.status).toBe(409);
    // Nor by asking for it as a rollout in waves: it waits for approval like a plan's apply
    // (docs/adr/0110; test/jobs/rollout-approvals.spec.ts runs one through).
    const rollout = await w.api('POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'sneaky' }] },
      tags: ['core'],
    });
    expect(rollout.status, JSON.stringify(rollout.body)).toBe(201);
    expect(rollout.body.state).toBe('pending_approval');
    expect(rollout.body.approval).toMatchObject({ state: 'pending', requiredRole: 'admin' });
    expect((await w.api('POST', `/approvals/${rollout.body.approval.id}/approve`, {})).status).toBe(403);
    // Reading is not a change: a backup needs no approval.
    expect((await w.api('POST', `/sites/${site}/jobs`, { kind: 'backup' })).status).toBe(201);

    const edge = await w.addSite('edge-1', { tags: ['edge'] });
    const free = await readyPlan(edge, 'edge-name');
    const direct = await w.api('POST', `/plans/${free.id}/apply`, {});
    expect(direct.status).toBe(201);
    expect(direct.body.approval).toBeNull();
  }, 60_000);
});
