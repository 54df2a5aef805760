/**
 * Plans (docs/adr/0088-plans.md): a preview on three simulated routers lists exactly what the
 * apply then changes (compared on the routers' exports), writes nothing itself, and an apply
 * after an out-of-band change on one router is refused there as `plan_stale` (nothing
 * written) while the other sites apply.
 */
import { exportWithoutHeader } from '@backplane/jobs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript, type SimRouter } from '../../apps/routeros-sim/src';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner();
}, 60_000);

afterAll(async () => {
  await w?.close();
});

async function routerExport(r: SimRouter): Promise<string> {
  const res = await runScript(r, '/export');
  expect(res.error).toBeUndefined();
  return exportWithoutHeader(res.output.join('\n'));
}

type Change = { menu: string; item: string; property: string; before: string | null; after: string | null };
type PlanSite = {
  siteId: string;
  status: string;
  changes: Change[];
  commands: string[];
  error: string | null;
  applyJobId: string | null;
  dryRun: { status: string } | null;
};
type Plan = { id: string; ready: boolean; state: string; sites: PlanSite[]; summary: Record<string, number> };

async function waitPlan(id: string, done: (p: Plan) => boolean, ms = 20_000): Promise<Plan> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await w.api('GET', `/plans/${id}`);
    expect(r.status).toBe(200);
    const p = r.body as Plan;
    if (done(p)) return p;
    if (Date.now() > end) throw new Error(`plan ${id} not done: ${JSON.stringify(p)}`);
    await new Promise((res) => setTimeout(res, 150));
  }
}

/** The lines of `after` that `before` lacks (what a change added to the export). */
function added(before: string, after: string): string[] {
  const b = new Set(before.split('\n'));
  return after.split('\n').filter((l) => !b.has(l));
}

const CHANGES = [
  { menu: 'dns', servers: ['9.9.9.9', '149.112.112.112'] },
  { menu: 'identity', name: 'edge-planned' },
  { menu: 'address-list', list: 'mgmt', addresses: ['192.0.2.10', '192.0.2.11'] },
];

describe('plan → apply', () => {
  it('a plan on 3 sites lists exactly what apply then changes (compared on the routers), and writes nothing itself', async () => {
    const sites = [
      await w.addSite('plan-a', { tags: ['plan-wave'] }),
      await w.addSite('plan-b', { tags: ['plan-wave'] }),
      await w.addSite('plan-c', { tags: ['plan-wave'], version: '6.49.10' }),
    ];
    const routers = sites.map((s) => w.routers.get(s)!);
    // One router already has one of the entries: its plan must not list it.
    await runScript(routers[1]!, '/ip firewall address-list add list=mgmt address=192.0.2.10');
    const before = await Promise.all(routers.map(routerExport));

    const key = { 'Idempotency-Key': 'plan-3-sites' };
    const created = await w.api(
      'POST',
      '/plans',
      { kind: 'apply-config', payload: { changes: CHANGES }, tags: ['plan-wave'] },
      key,
    );
    expect(created.status).toBe(201);
    const again = await w.api(
      'POST',
      '/plans',
      { kind: 'apply-config', payload: { changes: CHANGES }, tags: ['plan-wave'] },
      key,
    );
    expect(again.body.id).toBe(created.body.id);
    const plan = await waitPlan(created.body.id as string, (p) => p.ready);
    expect(plan.sites.map((s) => s.status)).toEqual(['ready', 'ready', 'ready']);

    // The plan wrote nothing.
    expect(await Promise.all(routers.map(routerExport))).toEqual(before);

    const bySite = new Map(plan.sites.map((s) => [s.siteId, s]));
    const a = bySite.get(sites[0]!)!;
    expect(a.changes).toEqual(
      expect.arrayContaining([
        {
          menu: '/ip/dns',
          item: '',
          property: 'servers',
          before: expect.any(String),
          after: '9.9.9.9,149.112.112.112',
        },
        { menu: '/system/identity', item: '', property: 'name', before: 'MikroTik', after: 'edge-planned' },
        {
          menu: '/ip/firewall/address-list',
          item: '192.0.2.11',
          property: 'address',
          before: null,
          after: '192.0.2.11',
        },
      ]),
    );
    expect(a.commands).toContain('/ip dns set servers="9.9.9.9,149.112.112.112"');
    const b = bySite.get(sites[1]!)!;
    expect(b.commands.filter((c) => c.includes('192.0.2.10'))).toEqual([]);
    expect(b.commands.filter((c) => c.includes('192.0.2.11'))).toHaveLength(1);
    // RouterOS 6 has no /import dry-run: skipped, said so.
    expect(bySite.get(sites[2]!)!.dryRun?.status).toBe('skipped');

    // Apply on the first two: the export changes by exactly the planned values.
    const applied = await w.api('POST', `/plans/${plan.id}/apply`, {}, { 'Idempotency-Key': 'apply-1' });
    expect(applied.status).toBe(201);
    const done = await waitPlan(plan.id, (p) =>
      p.sites.every((s) => ['applied', 'stale', 'apply_failed'].includes(s.status)),
    );
    expect(done.sites.map((s) => s.status)).toEqual(['applied', 'applied', 'applied']);
    const after = await Promise.all(routers.map(routerExport));
    // Site b already had 192.0.2.10: apply did not add it twice (it was not planned).
    expect(added(before[1]!, after[1]!).filter((l) => l.includes('192.0.2.10'))).toEqual([]);
    for (const [i, s] of sites.entries()) {
      const p = bySite.get(s)!;
      // As many export lines changed in the address list as the plan had address-list items.
      const planned = new Set(p.changes.filter((c) => c.menu === '/ip/firewall/address-list').map((c) => c.item));
      expect(added(before[i]!, after[i]!).filter((l) => l.includes('list=mgmt'))).toHaveLength(planned.size);
      const lines = added(before[i]!, after[i]!).join('\n');
      // Every planned "after" value is now in the export, and nothing was written that was not planned.
      for (const c of p.changes)
        if (c.after !== null && c.property !== 'list') expect(lines).toContain(c.after.split(',')[0]!);
      const secondRun = await w.api('POST', '/plans', {
        kind: 'apply-config',
        payload: { changes: CHANGES },
        siteIds: [s],
      });
      const replan = await waitPlan(secondRun.body.id as string, (x) => x.ready);
      expect(replan.sites[0]!.changes).toEqual([]);
    }
  }, 90_000);

  it('an out-of-band change between plan and apply: that site is refused as plan_stale, nothing written there; the others apply', async () => {
    const sites = [
      await w.addSite('stale-a', { tags: ['stale-wave'] }),
      await w.addSite('stale-b', { tags: ['stale-wave'] }),
      await w.addSite('stale-c', { tags: ['stale-wave'] }),
    ];
    const created = await w.api('POST', '/plans', {
      kind: 'apply-config',
      payload: {
        changes: [
          { menu: 'dns', servers: ['1.1.1.1'] },
          { menu: 'identity', name: 'edge-new' },
        ],
      },
      tags: ['stale-wave'],
    });
    expect(created.status).toBe(201);
    const plan = await waitPlan(created.body.id as string, (p) => p.ready);
    // Someone changes site b by hand after the preview.
    const rb = w.routers.get(sites[1]!)!;
    await runScript(rb, '/system identity set name=changed-by-hand');
    const bBefore = await routerExport(rb);

    const applied = await w.api('POST', `/plans/${plan.id}/apply`, {});
    expect(applied.status).toBe(201);
    const done = await waitPlan(plan.id, (p) =>
      p.sites.every((s) => ['applied', 'stale', 'apply_failed'].includes(s.status)),
    );
    const status = Object.fromEntries(done.sites.map((s) => [s.siteId, s]));
    expect(status[sites[0]!]!.status).toBe('applied');
    expect(status[sites[2]!]!.status).toBe('applied');
    expect(status[sites[1]!]!.status).toBe('stale');
    expect(status[sites[1]!]!.error).toMatch(
      /plan_stale: the router changed since plan .* read it \(\/system\/identity\)/,
    );
    // Nothing written on the stale site (its dns too is as it was).
    expect(await routerExport(rb)).toBe(bBefore);
    expect(w.routers.get(sites[0]!)!.state.single('system/identity').values['name']).toBe('edge-new');

    // Applying again returns the same plan (already applied), a second apply creates no jobs.
    const twice = await w.api('POST', `/plans/${plan.id}/apply`, {});
    expect(twice.status).toBe(200);
    expect(done.summary['stale']).toBe(1);
  }, 90_000);

  it('an expired plan cannot be applied', async () => {
    const site = await w.addSite('plan-expiry');
    const created = await w.api('POST', '/plans', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'x' }] },
      siteIds: [site],
      expiresInSeconds: 60,
    });
    const plan = await waitPlan(created.body.id as string, (p) => p.ready);
    await w.h.ds.query(`UPDATE plans SET expires_at = now() - interval '1 second' WHERE id = $1`, [plan.id]);
    const res = await w.api('POST', `/plans/${plan.id}/apply`, {});
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('plan_expired');
  }, 60_000);

  it('a mutating run-command is previewed (before → after) and applied; after an out-of-band change it is refused as stale', async () => {
    const site = await w.addSite('cmd-plan');
    const r = w.routers.get(site)!;
    const dns = await w.api('POST', '/plans', {
      kind: 'run-command',
      payload: { command: '/ip/dns/set', attributes: { servers: '8.8.8.8' } },
      siteIds: [site],
    });
    expect(dns.status).toBe(201);
    const p1 = await waitPlan(dns.body.id as string, (p) => p.ready);
    expect(p1.sites[0]!.changes).toEqual([
      { menu: '/ip/dns', item: '', property: 'servers', before: '192.0.2.1', after: '8.8.8.8' },
    ]);
    expect(p1.sites[0]!.commands).toEqual(['/ip dns set servers="8.8.8.8"']);
    expect((await w.api('POST', `/plans/${p1.id}/apply`, {})).status).toBe(201);
    const d1 = await waitPlan(p1.id, (p) =>
      p.sites.every((s) => ['applied', 'stale', 'apply_failed'].includes(s.status)),
    );
    expect(d1.sites[0]!.status).toBe('applied');
    expect(r.state.single('ip/dns').values['servers']).toBe('8.8.8.8');

    const id = await w.api('POST', '/plans', {
      kind: 'run-command',
      payload: { command: '/system/identity/set', attributes: { name: 'from-plan' } },
      siteIds: [site],
    });
    const p2 = await waitPlan(id.body.id as string, (p) => p.ready);
    expect(p2.sites[0]!.changes).toEqual([
      { menu: '/system/identity', item: '', property: 'name', before: 'MikroTik', after: 'from-plan' },
    ]);
    await runScript(r, '/system identity set name=by-hand');
    expect((await w.api('POST', `/plans/${p2.id}/apply`, {})).status).toBe(201);
    const d2 = await waitPlan(p2.id, (p) =>
      p.sites.every((s) => ['applied', 'stale', 'apply_failed'].includes(s.status)),
    );
    expect(d2.sites[0]!.status).toBe('stale');
    expect(r.state.single('system/identity').values['name']).toBe('by-hand');
  }, 60_000);

  it('a password in a previewed change is never shown: not in the diff, the commands, the plan job or its result', async () => {
    const site = await w.addSite('plan-secret');
    const created = await w.api('POST', '/plans', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'user', name: 'ops', group: 'read', password: 's3cret-pass-991' }] },
      siteIds: [site],
    });
    const plan = await waitPlan(created.body.id as string, (p) => p.ready);
    expect(plan.sites[0]!.changes).toContainEqual({
      menu: '/user',
      item: 'ops',
      property: 'password',
      before: null,
      after: '***',
    });
    expect(plan.sites[0]!.commands[0]).toContain('password="***"');
    const job = await w.api('GET', `/jobs/${(plan.sites[0] as unknown as { planJobId: string }).planJobId}`);
    expect(JSON.stringify(job.body)).not.toContain('s3cret-pass-991');
    expect(JSON.stringify(plan)).not.toContain('s3cret-pass-991');
    // Applied, the user gets the password (the apply uses the plan's payload, not the preview).
    expect((await w.api('POST', `/plans/${plan.id}/apply`, {})).status).toBe(201);
    const done = await waitPlan(plan.id, (p) =>
      p.sites.every((s) => ['applied', 'stale', 'apply_failed'].includes(s.status)),
    );
    expect(done.sites[0]!.status).toBe('applied');
    expect(w.routers.get(site)!.state.find('user', { name: 'ops' })).toBeDefined();
  }, 60_000);
});
