/**
 * apply-config on both RouterOS generations and its all-or-nothing promise: NTP in the form
 * each version knows (6: primary-ntp/secondary-ntp + server-dns-names, 7: servers=), a
 * change the router cannot hold refused before anything is written, and a write the router
 * refuses mid-way taking back the changes already made.
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
  const res = await runScript(r, '/export show-sensitive');
  expect(res.error).toBeUndefined();
  return exportWithoutHeader(res.output.join('\n'));
}

async function apply(site: string, changes: unknown[]) {
  const res = await w.api('POST', `/sites/${site}/jobs`, { kind: 'apply-config', payload: { changes } });
  expect(res.status).toBe(201);
  return w.waitJob(res.body.id as string);
}

type Step = { name: string; state: string; detail?: string };

describe('NTP on RouterOS 6 and 7', () => {
  it('RouterOS 6: addresses in primary-ntp/secondary-ntp, names in server-dns-names; a second run changes nothing', async () => {
    const site = await w.addSite('ntp-v6', { version: '6.49.10' });
    const r = w.routers.get(site)!;
    const change = { menu: 'ntp', enabled: true, servers: ['192.0.2.123', 'pool.ntp.org'] };
    const job = await apply(site, [{ menu: 'dns', servers: ['9.9.9.9'] }, change]);
    expect(job.error).toBeNull();
    expect(job.state).toBe('succeeded');
    const ntp = r.state.single('system/ntp/client').values;
    expect(ntp).toMatchObject({
      enabled: 'true',
      'primary-ntp': '192.0.2.123',
      'secondary-ntp': '0.0.0.0',
      'server-dns-names': 'pool.ntp.org',
    });
    expect(await routerExport(r)).toContain(
      '/system ntp client\nset enabled=yes primary-ntp=192.0.2.123 server-dns-names=pool.ntp.org\n',
    );
    const again = await apply(site, [change]);
    expect(again.state).toBe('succeeded');
    expect((again.steps as Step[]).find((s) => s.name === 'apply 1/1 ntp' && s.state === 'done')?.detail).toBe(
      'already as desired',
    );
  }, 30_000);

  it('RouterOS 7: one servers= list', async () => {
    const site = await w.addSite('ntp-v7', { version: '7.16' });
    const r = w.routers.get(site)!;
    const job = await apply(site, [{ menu: 'ntp', enabled: true, servers: ['192.0.2.123', 'pool.ntp.org'] }]);
    expect(job.error).toBeNull();
    expect(job.state).toBe('succeeded');
    expect(r.state.single('system/ntp/client').values).toMatchObject({
      enabled: 'true',
      servers: '192.0.2.123,pool.ntp.org',
    });
    expect(await routerExport(r)).toContain('/system ntp client\nset enabled=yes servers=192.0.2.123,pool.ntp.org\n');
  }, 30_000);
});

describe('all or nothing', () => {
  it('a change the router cannot hold fails the job before anything is written', async () => {
    const site = await w.addSite('check-first', { version: '6.49.10' });
    const r = w.routers.get(site)!;
    const before = await routerExport(r);
    const job = await apply(site, [
      { menu: 'dns', servers: ['9.9.9.9'] },
      { menu: 'identity', name: 'never-set' },
      // Three addresses: RouterOS 6 has two slots.
      { menu: 'ntp', enabled: true, servers: ['192.0.2.1', '192.0.2.2', '192.0.2.3'] },
    ]);
    expect(job.state).toBe('failed');
    expect(job.error).toContain('change 3/3 (ntp) cannot be applied, nothing was changed');
    expect(job.error).toContain('at most two NTP server addresses');
    expect((job.steps as Step[]).filter((s) => s.name.startsWith('apply '))).toEqual([]);
    expect(await routerExport(r)).toBe(before);
    expect(r.identity).not.toBe('never-set');
  }, 30_000);

  it('a write refused mid-way: the changes already applied are taken back, the job fails saying so', async () => {
    const site = await w.addSite('roll-back', { version: '7.16' });
    const r = w.routers.get(site)!;
    // A least-privilege API user: it may read /user but not add one (no `policy` policy).
    expect((await runScript(r, '/user set [find name=bp-api] group=write')).error).toBeUndefined();
    expect((await runScript(r, '/ip firewall address-list add list=keep address=198.51.100.7')).error).toBeUndefined();
    const before = await routerExport(r);
    const job = await apply(site, [
      { menu: 'dns', servers: ['9.9.9.9', '149.112.112.112'] },
      { menu: 'identity', name: 'half-applied' },
      { menu: 'address-list', list: 'keep', addresses: ['203.0.113.1', '203.0.113.2'], exclusive: true },
      { menu: 'ntp', enabled: true, servers: ['192.0.2.123'] },
      { menu: 'user', name: 'auditor', group: 'read' },
    ]);
    expect(job.state).toBe('failed');
    expect(job.error).toContain('change 5/5 (user) failed');
    expect(job.error).toContain('not enough permissions');
    expect(job.error).toContain('rolled back 4 applied change(s)');
    const steps = job.steps as Step[];
    expect(steps.filter((s) => s.state === 'done').map((s) => s.name)).toEqual([
      // commit-confirm (ADR 0085): checked and armed first, disarmed after the rollback
      'lockout check',
      'arm rollback',
      'check every change',
      'apply 1/5 dns',
      'apply 2/5 identity',
      'apply 3/5 address-list',
      'apply 4/5 ntp',
      'roll back',
    ]);
    // The router is as it was before the job: DNS, identity, the list (entry removed by
    // `exclusive` is back, the added ones gone) and NTP.
    expect(await routerExport(r)).toBe(before);
    expect(r.identity).not.toBe('half-applied');
  }, 30_000);
});
