/**
 * Plans of restore, routeros-upgrade, reboot and recreate-tunnel (docs/adr/0107): each preview
 * shows what the job would do and sends the router no mutating command (checked on the
 * simulator's command stream); an approval policy naming the kind refuses the direct job
 * (409 approval_required) while plan → approve → apply runs it; a restore plan whose router
 * changed after the preview is refused as plan_stale, nothing written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportWithoutHeader } from '@backplane/jobs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { addMember, login, PASSWORD } from '../api/harness';
import { restoreChanges } from '../../apps/worker/src/jobs/handlers/plan-kinds';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let dir: string;
let approver: string;
let operator: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-plan-kinds-'));
  w = await jobsWorld({ DATA_DIR: dir });
  w.startRunner();
  const m = await addMember(w.h, w.token, w.tenantId, {
    email: 'approver@plan-kinds.test',
    role: 'admin',
    password: PASSWORD,
  });
  expect(m.status).toBe(201);
  approver = await login(w.h, 'approver@plan-kinds.test');
  const op = await addMember(w.h, w.token, w.tenantId, {
    email: 'operator@plan-kinds.test',
    role: 'operator',
    password: PASSWORD,
  });
  expect(op.status).toBe(201);
  operator = await login(w.h, 'operator@plan-kinds.test');
  // Only sites tagged `guarded` need approval for these kinds.
  const policy = await w.api('PUT', '/approval-policy', {
    rules: [
      {
        kinds: ['restore', 'routeros-upgrade', 'reboot', 'recreate-tunnel'],
        tags: ['guarded'],
        approverRole: 'admin',
      },
    ],
    ttlSeconds: 600,
  });
  expect(policy.status).toBe(200);
}, 90_000);

afterAll(async () => {
  await w?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Change = { menu: string; item: string; property: string; before: string | null; after: string | null };
type PlanSite = {
  siteId: string;
  status: string;
  changes: Change[];
  commands: string[];
  error: string | null;
  note: string | null;
  applyJobId: string | null;
  planJobId: string;
};
type Plan = { id: string; ready: boolean; state: string; sites: PlanSite[]; approvalId: string | null };

const FINAL = ['applied', 'stale', 'apply_failed'];

async function waitPlan(id: string, done: (p: Plan) => boolean, ms = 60_000): Promise<Plan> {
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

/** Verbs that only read (the upgrade preview asks the update server; that installs nothing). */
const READS = /\/(print|getall|export|check-for-updates)$/;

/**
 * Every command the simulated router is sent from now on (its engine's command stream);
 * `files`: the names of the files added.
 */
function commandsSent(r: SimRouter, files: string[] = []): string[] {
  const seen: string[] = [];
  const engine = r.engine as { execute: SimRouter['engine']['execute'] };
  const original = engine.execute.bind(r.engine);
  engine.execute = (session, request, out) => {
    seen.push(request.command);
    if (request.command === '/file/add') files.push(request.args.get('name') ?? '');
    return original(session, request, out);
  };
  return seen;
}

/** A plan of `kind` on `site`, read back ready; the router saw only reads meanwhile. */
async function readyPlan(site: string, kind: string, payload: unknown = {}): Promise<Plan> {
  const sent = commandsSent(w.routers.get(site)!);
  const created = await w.api('POST', '/plans', { kind, payload, siteIds: [site] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const plan = await waitPlan(created.body.id as string, (p) => p.ready);
  expect(plan.sites[0]!.status, JSON.stringify(plan.sites[0])).toBe('ready');
  expect(sent.length).toBeGreaterThan(0);
  expect(sent.filter((c) => !READS.test(c))).toEqual([]);
  return plan;
}

async function job(site: string, kind: string, payload: unknown = {}) {
  const res = await w.api('POST', `/sites/${site}/jobs`, { kind, payload });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const done = await w.waitJob(res.body.id as string, undefined, 60_000);
  expect(done.state, JSON.stringify(done)).toBe('succeeded');
  return done;
}

/** A site onboarded through the pasted one-liner (API user, CA, tunnel, poll scheduler). */
async function onboarded(name: string, tags: string[] = []): Promise<{ id: string; r: SimRouter }> {
  const site = await w.api('POST', '/sites', { name, tags });
  const id = site.body.id as string;
  const cmd = await w.api('POST', `/sites/${id}/onboarding`);
  const r = await startRouter({ version: '7.16', rebootDelayMs: 200 });
  w.routers.set(id, r);
  w.ports.set(id, r.port);
  expect((await runScript(r, cmd.body.command as string)).error).toBeUndefined();
  expect((await runScript(r, '/ip service set [find name=api] address=127.0.0.1/32')).error).toBeUndefined();
  return { id, r };
}

/** A site with a backup taken at identity `backed-up`, then changed to identity `changed`, dns 9.9.9.9. */
async function siteWithBackup(name: string, tags: string[] = []) {
  const { id, r } = await onboarded(name, tags);
  expect((await runScript(r, '/system identity set name=backed-up')).error).toBeUndefined();
  const b = await job(id, 'backup');
  const backupId = (b.result as { backupId: string }).backupId;
  expect((await runScript(r, '/system identity set name=changed')).error).toBeUndefined();
  expect((await runScript(r, '/ip dns set servers=9.9.9.9')).error).toBeUndefined();
  return { id, r, backupId };
}

async function routerExport(r: SimRouter): Promise<string> {
  const res = await runScript(r, '/export');
  expect(res.error).toBeUndefined();
  return exportWithoutHeader(res.output.join('\n'));
}

const identity = (r: SimRouter) => r.state.single('system/identity').values['name'];

describe('plans of restore, routeros-upgrade, reboot, recreate-tunnel', () => {
  it('restore: the preview is the export difference to the backup (Backplane objects aside); apply restores it', async () => {
    const { id, r, backupId } = await siteWithBackup('pk-restore');
    const plan = await readyPlan(id, 'restore', { backupId });
    const s = plan.sites[0]!;
    expect(s.changes).toEqual(
      expect.arrayContaining([
        { menu: '/system/identity', item: '', property: 'name', before: 'changed', after: 'backed-up' },
        { menu: '/ip/dns', item: '', property: 'servers', before: '9.9.9.9', after: expect.any(String) },
      ]),
    );
    // Backplane's own objects (tunnel, poll scheduler, API service) are not in the preview.
    expect(s.changes.filter((c) => c.item === id || /ovpn|scheduler|ip\/service/.test(c.menu))).toEqual([]);
    expect(s.note).toMatch(/restore of backup .*export line\(s\) differ/);
    expect(identity(r)).toBe('changed');
    expect((plan as unknown as { payload: unknown }).payload).toEqual({ backupId });
    // A restore plan needs the role a restore needs (admin).
    const byOperator = await w.h.call('POST', `/api/v1/tenants/${w.tenantId}/plans`, {
      token: operator,
      body: { kind: 'restore', payload: { backupId }, siteIds: [id] },
    });
    expect(byOperator.status).toBe(403);

    expect((await w.api('POST', `/plans/${plan.id}/apply`, {})).status).toBe(201);
    const done = await waitPlan(plan.id, (p) => p.sites.every((x) => FINAL.includes(x.status)));
    expect(done.sites[0]!.status, JSON.stringify(done.sites[0])).toBe('applied');
    expect(identity(r)).toBe('backed-up');
  }, 120_000);

  it('restore: a router changed after the preview is refused as plan_stale; it is neither reset nor changed', async () => {
    const { id, r, backupId } = await siteWithBackup('pk-restore-stale');
    const plan = await readyPlan(id, 'restore', { backupId });
    expect((await runScript(r, '/system identity set name=by-hand')).error).toBeUndefined();
    const before = await routerExport(r);
    const files: string[] = [];
    const sent = commandsSent(r, files);
    expect((await w.api('POST', `/plans/${plan.id}/apply`, {})).status).toBe(201);
    const done = await waitPlan(plan.id, (p) => p.sites.every((x) => FINAL.includes(x.status)));
    expect(done.sites[0]!.status).toBe('stale');
    expect(done.sites[0]!.error).toMatch(/plan_stale: the router changed since plan .* read it/);
    expect(identity(r)).toBe('by-hand');
    // Not reset, nothing uploaded by the restore; the configuration is as it was (the runner's
    // commit-confirm arming, ADR 0085, is disarmed again when the job fails).
    expect(sent.filter((c) => /reset-configuration|\/reboot|\/import/.test(c))).toEqual([]);
    expect(files.filter((f) => f === 'bp-restore.rsc')).toEqual([]);
    expect(await routerExport(r)).toBe(before);
  }, 120_000);

  it('routeros-upgrade: current version → the target, RouterBOOT follows; nothing installed by the preview; apply upgrades', async () => {
    const site = await w.addSite('pk-upgrade', { version: '7.16' });
    const r = w.routers.get(site)!;
    const plan = await readyPlan(site, 'routeros-upgrade');
    const s = plan.sites[0]!;
    expect(s.changes).toEqual(
      expect.arrayContaining([
        { menu: '/system/package', item: 'routeros', property: 'version', before: '7.16', after: '7.20.2' },
        { menu: '/system/routerboard', item: '', property: 'current-firmware', before: '7.16', after: '7.20.2' },
      ]),
    );
    expect(s.note).toMatch(/RouterOS 7\.16 → 7\.20\.2: the stable channel offers 7\.20\.2/);
    expect(s.note).toMatch(/RouterBOOT 7\.16 follows/);
    expect(r.state.version).toBe('7.16');

    expect((await w.api('POST', `/plans/${plan.id}/apply`, {})).status).toBe(201);
    const done = await waitPlan(plan.id, (p) => p.sites.every((x) => FINAL.includes(x.status)), 120_000);
    expect(done.sites[0]!.status, JSON.stringify(done.sites[0])).toBe('applied');
    expect(r.state.version).toBe('7.20.2');
  }, 180_000);

  it('routeros-upgrade: a router that runs another version than the preview read is refused as plan_stale', async () => {
    const site = await w.addSite('pk-upgrade-stale', { version: '7.16' });
    const plan = await readyPlan(site, 'routeros-upgrade', { channel: 'long-term' });
    expect(plan.sites[0]!.changes).toContainEqual(
      expect.objectContaining({ property: 'channel', before: 'stable', after: 'long-term' }),
    );
    // Upgraded by hand meanwhile.
    const r = w.routers.get(site)!;
    await job(site, 'routeros-upgrade');
    expect(r.state.version).toBe('7.20.2');
    expect((await w.api('POST', `/plans/${plan.id}/apply`, {})).status).toBe(201);
    const done = await waitPlan(plan.id, (p) => p.sites.every((x) => FINAL.includes(x.status)), 120_000);
    expect(done.sites[0]!.status).toBe('stale');
    expect(done.sites[0]!.error).toMatch(/it runs RouterOS 7\.20\.2, the plan read 7\.16/);
  }, 240_000);

  it('reboot: a one-line preview with the uptime; nothing sent but reads', async () => {
    const site = await w.addSite('pk-reboot');
    const plan = await readyPlan(site, 'reboot');
    const s = plan.sites[0]!;
    expect(s.note).toMatch(/^the router reboots \(up \S+ now, RouterOS 7\.16\)$/);
    expect(s.changes).toEqual([
      { menu: '/system', item: '', property: 'reboot', before: expect.stringMatching(/^up /), after: 'rebooted' },
    ]);
    expect(s.commands).toEqual(['/system reboot']);
  }, 60_000);

  it('recreate-tunnel: lists the tunnel objects removed and re-created, secret masked; nothing written', async () => {
    const { id, r } = await onboarded('pk-recreate');
    const secret = r.state.items('interface/ovpn-client').find((c) => c.values['name'] === id)!.values['password']!;
    const plan = await readyPlan(id, 'recreate-tunnel');
    const s = plan.sites[0]!;
    expect(s.changes).toEqual(
      expect.arrayContaining([
        {
          menu: '/interface/ovpn-client',
          item: id,
          property: 'object',
          before: 'present',
          after: 'removed and re-created',
        },
        { menu: '/interface/ovpn-client', item: id, property: 'password', before: '***', after: '*** (new secret)' },
        { menu: '/ppp/profile', item: id, property: 'object', before: 'present', after: 'removed and re-created' },
      ]),
    );
    expect(s.commands.some((c) => c.includes('/interface ovpn-client remove'))).toBe(true);
    expect(JSON.stringify(plan)).not.toContain(secret);
    expect(r.state.items('interface/ovpn-client').find((c) => c.values['name'] === id)!.values['password']).toBe(
      secret,
    );
  }, 60_000);

  it('under an approval policy naming the kind: the direct job is 409 approval_required; plan → approve → apply runs it', async () => {
    const { id, r, backupId } = await siteWithBackup('pk-guarded', ['guarded']);
    const upg = await w.addSite('pk-guarded-upgrade', { tags: ['guarded'] });
    const asApprover = (path: string) =>
      w.h.call('POST', `/api/v1/tenants/${w.tenantId}${path}`, { token: approver, body: {} });
    const cases: [string, string, unknown, () => void][] = [
      ['restore', id, { backupId }, () => expect(identity(r)).toBe('backed-up')],
      ['routeros-upgrade', upg, {}, () => expect(w.routers.get(upg)!.state.version).toBe('7.20.2')],
      ['reboot', upg, {}, () => undefined],
      ['recreate-tunnel', id, {}, () => undefined],
    ];
    for (const [kind, site, payload, check] of cases) {
      const direct = await w.api('POST', `/sites/${site}/jobs`, { kind, payload });
      expect(direct.status, kind).toBe(409);
      expect(direct.body.error.code).toBe('approval_required');
      expect(direct.body.error.message).toContain(`make a plan (POST /plans, kind ${kind})`);

      const plan = await readyPlan(site, kind, payload);
      const asked = await w.api('POST', `/plans/${plan.id}/apply`, {});
      expect(asked.status, kind).toBe(202);
      expect(asked.body.plan.state).toBe('pending_approval');
      const ok = await asApprover(`/approvals/${asked.body.approval.id as string}/approve`);
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      const done = await waitPlan(plan.id, (p) => p.sites.every((x) => FINAL.includes(x.status)), 120_000);
      expect(done.sites[0]!.status, `${kind}: ${JSON.stringify(done.sites[0])}`).toBe('applied');
      check();
    }
  }, 480_000);
});

describe('restoreChanges (the restore preview from the export difference)', () => {
  it('pairs a set of the same object per property; an add only in the backup comes back, one only on the router goes', () => {
    expect(
      restoreChanges([
        '- /ip dns set servers=1.1.1.1',
        '- /ip firewall address-list add address=192.0.2.1 list=mgmt',
        '+ /ip dns set allow-remote-requests=yes servers=9.9.9.9',
        '+ /interface bridge add comment="by hand" name=br-x',
      ]),
    ).toEqual([
      { menu: '/ip/dns', item: '', property: 'allow-remote-requests', before: 'yes', after: null },
      { menu: '/ip/dns', item: '', property: 'servers', before: '9.9.9.9', after: '1.1.1.1' },
      { menu: '/interface/bridge', item: 'br-x', property: 'comment', before: 'by hand', after: null },
      { menu: '/interface/bridge', item: 'br-x', property: 'name', before: 'br-x', after: null },
      {
        menu: '/ip/firewall/address-list',
        item: 'add address=192.0.2.1 list=mgmt',
        property: 'address',
        before: null,
        after: '192.0.2.1',
      },
      {
        menu: '/ip/firewall/address-list',
        item: 'add address=192.0.2.1 list=mgmt',
        property: 'list',
        before: null,
        after: 'mgmt',
      },
    ]);
  });
});
