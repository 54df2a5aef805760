/**
 * The tenant's commit-confirm window (issue 18, docs/adr/0085): admins set it on the tenant
 * settings PATCH within CONFIRM_WINDOW's bounds, null goes back to the default, every change
 * is audited, an operator cannot, and name / mfaRequired stay the owner's.
 */
import { CONFIRM_WINDOW } from '@backplane/jobs';
import { TenantScope, TenantsRepository } from '@backplane/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, bootstrap, login, startApi, type Harness } from './harness';

let h: Harness;
let tenantId: string;
let owner: string;
let admin: string;
let operator: string;

beforeAll(async () => {
  h = await startApi();
  const b = await bootstrap(h);
  tenantId = b.tenantId;
  owner = b.token;
  expect((await addMember(h, owner, tenantId, { email: 'cc-admin@msp-a.test', role: 'admin' })).status).toBe(201);
  expect((await addMember(h, owner, tenantId, { email: 'cc-op@msp-a.test', role: 'operator' })).status).toBe(201);
  admin = await login(h, 'cc-admin@msp-a.test');
  operator = await login(h, 'cc-op@msp-a.test');
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const patch = (token: string, body: unknown) => h.call('PATCH', `/api/v1/tenants/${tenantId}`, { token, body });

describe('tenant commit-confirm window', () => {
  it('admin sets it within bounds (audited, read by the worker), null resets, operator and out-of-range refused', async () => {
    const initial = await h.call('GET', `/api/v1/tenants/${tenantId}`, { token: operator });
    expect(initial.status).toBe(200);
    expect(initial.body.commitConfirmSeconds).toBeNull();
    expect(initial.body.commitConfirmDefaultSeconds).toBe(CONFIRM_WINDOW.default);

    const set = await patch(admin, { commitConfirmSeconds: 300 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.commitConfirmSeconds).toBe(300);
    expect((await h.call('GET', `/api/v1/tenants/${tenantId}`, { token: operator })).body.commitConfirmSeconds).toBe(
      300,
    );
    // What the worker's commit-confirm reads for this tenant's jobs.
    const stored = await h.db.inTenant(TenantScope.authenticated(tenantId), (tx) =>
      new TenantsRepository().commitConfirmSeconds(tx),
    );
    expect(stored).toBe(300);

    const [audit] = await h.ds.query<
      { before: { commitConfirmSeconds: unknown }; after: { commitConfirmSeconds: unknown } }[]
    >(
      `SELECT before, after FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.updated' ORDER BY id DESC LIMIT 1`,
      [tenantId],
    );
    expect(audit!.before.commitConfirmSeconds).toBeNull();
    expect(audit!.after.commitConfirmSeconds).toBe(300);

    for (const bad of [CONFIRM_WINDOW.min - 1, CONFIRM_WINDOW.max + 1, 60.5, '120']) {
      const r = await patch(admin, { commitConfirmSeconds: bad });
      expect(r.status, `value ${String(bad)}`).toBe(400);
    }
    const op = await patch(operator, { commitConfirmSeconds: 60 });
    expect(op.status).toBe(403);
    // The admin route does not open the owner's settings to admins.
    const rename = await patch(admin, { name: 'not mine to change' });
    expect(rename.status).toBe(403);
    expect((await patch(admin, { mfaRequired: true })).status).toBe(403);

    const reset = await patch(owner, { commitConfirmSeconds: null });
    expect(reset.status).toBe(200);
    expect(reset.body.commitConfirmSeconds).toBeNull();
    expect((await h.call('GET', `/api/v1/tenants/${tenantId}`, { token: owner })).body.commitConfirmSeconds).toBeNull();
  });
});
