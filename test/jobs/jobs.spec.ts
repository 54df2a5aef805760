/**
 * Jobs through the real api and an in-process worker (BullMQ on the test Redis with a
 * private prefix), against simulated routers reached directly on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter } from '../../apps/routeros-sim/src';
import { TenantScope } from '@backplane/db';
import { jobsRepo } from '@backplane/jobs';
import { JobsService } from '../../apps/api/src/jobs/jobs.service';
import { query } from '../../libs/db/src/sql';
import { addMember, login } from '../api/harness';
import { jobsWorld, ROUTER_USER, type JobsWorld } from './fixture';

let w: JobsWorld;

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner();
}, 60_000);

afterAll(async () => {
  await w?.close();
});

const values = (siteId: string, menu: string) =>
  w.routers
    .get(siteId)!
    .state.items(menu)
    .map((i) => i.values);

describe('apply configuration', () => {
  it('applies a desired state by find-then-set; the same change again changes nothing', async () => {
    const site = await w.addSite('cfg-1');
    const payload = {
      changes: [
        { menu: 'dns', servers: ['9.9.9.9', '1.1.1.1'] },
        { menu: 'identity', name: 'edge "1" $x' },
        { menu: 'address-list', list: 'mgmt', addresses: ['10.0.0.0/8', '192.0.2.7'] },
        { menu: 'user', name: 'noc', group: 'read', password: 'pw-1' },
      ],
    };
    const first = await w.api('POST', `/sites/${site}/jobs`, { kind: 'apply-config', payload });
    expect(first.status).toBe(201);
    const done = await w.waitJob(first.body.id);
    expect(done.state).toBe('succeeded');
    expect((done.result as { changed: string[] }).changed.length).toBe(4);
    expect(done.steps).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'apply 1/4 dns', state: 'done' })]),
    );
    expect(values(site, 'ip/dns')[0]!['servers']).toBe('9.9.9.9,1.1.1.1');
    expect(w.routers.get(site)!.identity).toBe('edge "1" $x');
    expect(values(site, 'ip/firewall/address-list').filter((a) => a['list'] === 'mgmt')).toHaveLength(2);
    expect(values(site, 'user').find((u) => u['name'] === 'noc')?.['group']).toBe('read');
    expect(JSON.stringify(done.payload)).not.toContain('pw-1');

    const second = await w.api('POST', `/sites/${site}/jobs`, { kind: 'apply-config', payload });
    const again = await w.waitJob(second.body.id);
    expect(again.state).toBe('succeeded');
    expect(again.result).toEqual({ changed: [] });
    expect(values(site, 'ip/firewall/address-list').filter((a) => a['list'] === 'mgmt')).toHaveLength(2);

    const ex = await w.api('GET', `/jobs/${first.body.id}/exports`);
    expect(ex.status).toBe(200);
    expect(ex.body.before).toContain('/ip dns');
    expect(ex.body.diff).toContain('+');
    expect(ex.body.after).toContain('9.9.9.9');
  });

  it('the same Idempotency-Key returns the same job; a bad payload is refused', async () => {
    const site = await w.addSite('idem');
    const body = { kind: 'apply-config', payload: { changes: [{ menu: 'identity', name: 'idem-1' }] } };
    const a = await w.api('POST', `/sites/${site}/jobs`, body, { 'idempotency-key': 'change-42' });
    const b = await w.api('POST', `/sites/${site}/jobs`, body, { 'idempotency-key': 'change-42' });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    await w.waitJob(a.body.id);
    const list = await w.api('GET', `/jobs?siteId=${site}`);
    expect(list.body.items).toHaveLength(1);
    const bad = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['x'] }] },
    });
    expect(bad.status).toBe(400);
  });
});

describe('offline sites, cancel, bulk', () => {
  it('a job for an offline site waits, then runs when the router comes back', async () => {
    const site = await w.addSite('flaky');
    const r = w.routers.get(site)!;
    const port = r.port;
    await r.stop();
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'came-back' }] },
    });
    await w.waitJob(res.body.id, ['waiting']);
    const back = await startRouter({ port, users: [ROUTER_USER] });
    w.routers.set(site, back);
    const done = await w.waitJob(res.body.id, undefined, 30_000);
    expect(done.state).toBe('succeeded');
    expect(back.identity).toBe('came-back');
  }, 40_000);

  it('cancel ends a waiting job at once', async () => {
    const site = await w.addSite('cancel-me');
    w.offline.add(site);
    const res = await w.api('POST', `/sites/${site}/jobs`, { kind: 'reboot', payload: {} });
    await w.waitJob(res.body.id, ['waiting']);
    const c = await w.api('POST', `/jobs/${res.body.id}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body.state).toBe('cancelled');
    w.offline.delete(site);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await w.job(res.body.id)).state).toBe('cancelled');
  });

  it('bulk by tag: one batch of per-site jobs with a batch status', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await w.addSite(`bulk-${i}`, { tags: ['branch'] }));
    await w.addSite('not-tagged');
    const res = await w.api(
      'POST',
      '/jobs/bulk',
      { kind: 'apply-config', tags: ['branch'], payload: { changes: [{ menu: 'dns', servers: ['8.8.8.8'] }] } },
      { 'idempotency-key': 'bulk-1' },
    );
    expect(res.status).toBe(201);
    expect(res.body.batch.total).toBe(3);
    const again = await w.api(
      'POST',
      '/jobs/bulk',
      { kind: 'apply-config', tags: ['branch'], payload: { changes: [{ menu: 'dns', servers: ['8.8.8.8'] }] } },
      { 'idempotency-key': 'bulk-1' },
    );
    expect(again.status).toBe(200);
    expect(again.body.batch.id).toBe(res.body.batch.id);
    const end = Date.now() + 20_000;
    let status = res.body.batch;
    while (!status.done && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await w.api('GET', `/job-batches/${res.body.batch.id}`)).body;
    }
    expect(status).toMatchObject({ done: true, finished: 3, states: { succeeded: 3 } });
    for (const id of ids) expect(values(id, 'ip/dns')[0]!['servers']).toBe('8.8.8.8');
  });
});

describe('backups, reboot, upgrade, run command', () => {
  it('backs up, deduplicates an unchanged configuration, diffs two versions', async () => {
    const site = await w.addSite('backed-up');
    const b1 = await w.waitJob((await w.api('POST', `/sites/${site}/backups`)).body.id);
    expect(b1.result).toMatchObject({ deduplicated: false });
    const b2 = await w.waitJob((await w.api('POST', `/sites/${site}/backups`)).body.id);
    expect(b2.result).toMatchObject({ deduplicated: true });
    await w.waitJob(
      (
        await w.api('POST', `/sites/${site}/jobs`, {
          kind: 'apply-config',
          payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
        })
      ).body.id,
    );
    const b3 = await w.waitJob((await w.api('POST', `/sites/${site}/backups`)).body.id);
    expect(b3.result).toMatchObject({ deduplicated: false });
    const list = await w.api('GET', `/sites/${site}/backups`);
    expect(list.body.items).toHaveLength(2);
    const [newer, older] = list.body.items as { id: string }[];
    const diff = await w.api('GET', `/backup-diff?from=${older!.id}&to=${newer!.id}`);
    expect(diff.status).toBe(200);
    expect(diff.body.diff).toMatch(/\+.*9\.9\.9\.9/);
    const full = await w.api('GET', `/backups/${newer!.id}`);
    expect(full.body.content).toContain('/ip dns');
  });

  it('reboots and upgrades RouterOS (check, download, reboot, verify)', async () => {
    const site = await w.addSite('old', { version: '7.15', latestVersion: '7.16' });
    const rb = await w.waitJob(
      (await w.api('POST', `/sites/${site}/jobs`, { kind: 'reboot', payload: {} })).body.id,
      undefined,
      30_000,
    );
    expect(rb.state).toBe('succeeded');
    const up = await w.waitJob(
      (await w.api('POST', `/sites/${site}/jobs`, { kind: 'routeros-upgrade', payload: {} })).body.id,
      undefined,
      40_000,
    );
    expect(up.state).toBe('succeeded');
    expect(up.result).toMatchObject({ from: '7.15', to: '7.16', routerboot: { current: '7.16', upgrade: '7.16' } });
    expect(w.routers.get(site)!.version).toBe('7.16');
  }, 60_000);

  it('runs a command and records it in the audit log', async () => {
    const site = await w.addSite('cmd');
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'run-command',
      payload: { command: '/ip/address/add', attributes: { address: '192.0.2.1/24', interface: 'ether1' } },
    });
    const done = await w.waitJob(res.body.id);
    expect(done.state).toBe('succeeded');
    expect(values(site, 'ip/address').some((a) => a['address'] === '192.0.2.1/24')).toBe(true);
    const audit = await w.api('GET', `/audit-log?action=job.run-command`);
    expect(audit.status).toBe(200);
    expect(JSON.stringify(audit.body)).toContain('/ip/address/add');
    const refused = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'run-command',
      payload: { command: '/nope/x', attributes: {} },
    });
    expect((await w.waitJob(refused.body.id)).state).toBe('failed');
  });
});

describe('command policy by role and secret redaction (issue 14 finding 2)', () => {
  const as = async (role: 'operator' | 'viewer' | 'admin') => {
    const email = `${role}-${Math.random().toString(36).slice(2, 8)}@policy.test`;
    const m = await addMember(w.h, w.token, w.tenantId, { email, role });
    expect(m.status).toBe(201);
    const token = await login(w.h, email);
    return (method: string, path: string, body?: unknown) =>
      w.h.call(method, `/api/v1/tenants/${w.tenantId}${path}`, { token, ...(body !== undefined ? { body } : {}) });
  };
  const runCmd = (command: string, attributes: Record<string, string> = {}) => ({
    kind: 'run-command',
    payload: { command, attributes },
  });

  it('an operator reads a tunnel secret only redacted; a viewer sees a job result redacted, an admin in full', async () => {
    const site = await w.addSite('policy-secret');
    const add = await w.api(
      'POST',
      `/sites/${site}/jobs`,
      runCmd('/interface/ovpn-client/add', {
        name: 'vpn-office',
        'connect-to': '192.0.2.50',
        user: 'office',
        password: 'tunnel-pw-1',
      }),
    );
    expect(add.status).toBe(201);
    expect((await w.waitJob(add.body.id)).state).toBe('succeeded');
    expect(JSON.stringify(add.body)).not.toContain('tunnel-pw-1');

    const operator = await as('operator');
    const viewer = await as('viewer');
    const opJob = await operator('POST', `/sites/${site}/jobs`, runCmd('/interface/ovpn-client/print'));
    expect(opJob.status).toBe(201);
    const opDone = await w.waitJob(opJob.body.id);
    expect(opDone.state).toBe('succeeded');
    expect(JSON.stringify(opDone)).not.toContain('tunnel-pw-1');
    expect(JSON.stringify(opDone.result)).toContain('***');
    // stored redacted: nobody, an admin included, reads it back from an operator's job
    const [stored] = await w.h.db.inTenant(TenantScope.authenticated(w.tenantId), (tx) =>
      query<{ r: string; s: string }>(tx, `SELECT result::text AS r, steps::text AS s FROM jobs WHERE id = $1`, [
        opJob.body.id,
      ]),
    );
    expect(stored!.r).not.toContain('tunnel-pw-1');
    expect(stored!.s).not.toContain('tunnel-pw-1');

    const adminJob = await w.api('POST', `/sites/${site}/jobs`, runCmd('/interface/ovpn-client/print'));
    expect((await w.waitJob(adminJob.body.id)).state).toBe('succeeded');
    const asAdmin = await w.api('GET', `/jobs/${adminJob.body.id}`);
    expect(JSON.stringify(asAdmin.body.result)).toContain('tunnel-pw-1');
    const asViewer = await viewer('GET', `/jobs/${adminJob.body.id}`);
    expect(asViewer.status).toBe(200);
    expect(JSON.stringify(asViewer.body)).not.toContain('tunnel-pw-1');
    expect(JSON.stringify(asViewer.body.result)).toContain('***');
    const listed = await viewer('GET', `/jobs?siteId=${site}`);
    expect(JSON.stringify(listed.body)).not.toContain('tunnel-pw-1');
    const asOperator = await operator('GET', `/jobs/${adminJob.body.id}`);
    expect(JSON.stringify(asOperator.body)).not.toContain('tunnel-pw-1');
  });

  it('an operator cannot create a router user, write, or export secrets: 403 command_not_allowed naming the rule', async () => {
    const site = await w.addSite('policy-user');
    const operator = await as('operator');
    const refused = [
      [runCmd('/user/add', { name: 'evil', group: 'full', password: 'evil-pw-123' }), 'admin_only_menu'],
      [runCmd('/user/print'), 'admin_only_menu'],
      [runCmd('/ppp/secret/print'), 'admin_only_menu'],
      [runCmd('/system/script/add', { name: 'x', source: '/user add name=e group=full' }), 'admin_only_menu'],
      [runCmd('/tool/fetch', { url: 'http://192.0.2.1/x.rsc' }), 'admin_only_menu'],
      [runCmd('/ip/address/add', { address: '192.0.2.9/24', interface: 'ether1' }), 'write_needs_admin'],
      [runCmd('/export', { 'show-sensitive': '' }), 'export_needs_admin'],
      [
        { kind: 'apply-config', payload: { changes: [{ menu: 'user', name: 'evil', group: 'full', password: 'p' }] } },
        'admin_only_menu',
      ],
    ] as const;
    for (const [body, rule] of refused) {
      const res = await operator('POST', `/sites/${site}/jobs`, body);
      expect(res.status, JSON.stringify(body)).toBe(403);
      expect(res.body.error.code).toBe('command_not_allowed');
      expect(res.body.error.details).toEqual([{ path: 'rule', message: rule }]);
    }
    const bulk = await operator('POST', `/jobs/bulk`, {
      ...runCmd('/user/add', { name: 'evil2', group: 'full' }),
      siteIds: [site],
    });
    expect(bulk.status).toBe(403);
    expect(values(site, 'user').some((u) => u['name'] === 'evil' || u['name'] === 'evil2')).toBe(false);
    // reads on the allow-list pass
    const ok = await operator('POST', `/sites/${site}/jobs`, runCmd('/ip/address/print'));
    expect(ok.status).toBe(201);
    expect((await w.waitJob(ok.body.id)).state).toBe('succeeded');
  });

  it("nobody, an admin included, resets the router or changes Backplane's management objects; the worker checks again", async () => {
    const site = await w.addSite('policy-mgmt');
    for (const body of [
      runCmd('/system/reset-configuration', { 'no-defaults': 'yes' }),
      runCmd('/user/set', { numbers: 'bp-api', group: 'read' }),
      runCmd('/interface/ovpn-client/set', { numbers: site, 'connect-to': '203.0.113.66' }),
      runCmd('/interface/ovpn-client/remove', { numbers: '*1' }),
    ]) {
      const res = await w.api('POST', `/sites/${site}/jobs`, body);
      expect(res.status, JSON.stringify(body)).toBe(403);
      expect(res.body.error.code).toBe('command_not_allowed');
    }
    // a job row that reached the queue without the api's check (an operator's /user/add): the worker refuses it
    const { row } = await w.h.db.inTenant(TenantScope.authenticated(w.tenantId), (tx) =>
      jobsRepo.create(tx, {
        siteId: site,
        kind: 'run-command',
        payload: { command: '/user/add', attributes: { name: 'smuggled', group: 'full', password: 'x' } },
        requestedBy: { type: 'user', id: null, label: 'operator', role: 'operator' },
        ttlSeconds: 600,
      }),
    );
    await w.h.app
      .get(JobsService)
      .queue.add({ jobId: row.id, tenantId: w.tenantId, siteId: site, kind: 'run-command' });
    const done = await w.waitJob(row.id, ['failed', 'succeeded']);
    expect(done.state).toBe('failed');
    expect(String(done.error)).toContain('command_not_allowed');
    expect(values(site, 'user').some((u) => u['name'] === 'smuggled')).toBe(false);
  });

  it('audit entries and payloads never carry a secret attribute', async () => {
    const site = await w.addSite('policy-audit');
    const res = await w.api(
      'POST',
      `/sites/${site}/jobs`,
      runCmd('/ppp/secret/add', { name: 'branch', password: 'ppp-pw-9' }),
    );
    expect(res.status).toBe(201);
    expect(JSON.stringify(res.body)).not.toContain('ppp-pw-9');
    await w.waitJob(res.body.id);
    const audit = await w.api('GET', `/audit-log?action=job.run-command`);
    expect(JSON.stringify(audit.body)).toContain('/ppp/secret/add');
    expect(JSON.stringify(audit.body)).not.toContain('ppp-pw-9');
  });
});
