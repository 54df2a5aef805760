/**
 * Firmware done properly (issue 18, ADR 0098): the tenant's firmware policy (channel and
 * pinned version per tenant and per tag) and the routeros-upgrade job — pre-upgrade backup,
 * install, running version verified, RouterBOOT upgrade and the second reboot, both versions
 * verified — through the real api and an in-process worker against simulated routers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, login } from '../api/harness';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner();
}, 60_000);

afterAll(async () => {
  await w?.close();
});

type Step = { name: string; state: string; detail?: string };

/** What the router's log says it did (as it happens: a reboot empties /log). */
function count(site: string, re: RegExp): () => number {
  let n = 0;
  w.routers.get(site)!.state.onChange((e) => {
    if (e.store === 'log' && e.item && re.test(e.item.values['message'] ?? '')) n++;
  });
  return () => n;
}

const board = (site: string) => w.routers.get(site)!.state.single('system/routerboard').values;

const setPolicy = (body: unknown) => w.api('PUT', '/firmware-policy', body);

async function upgrade(site: string, payload: Record<string, string> = {}) {
  const res = await w.api('POST', `/sites/${site}/jobs`, { kind: 'routeros-upgrade', payload });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return w.waitJob(res.body.id as string, undefined, 60_000);
}

/** Every step finished at most once (a finished step is never run again). */
function expectStepsOnce(job: Record<string, unknown>) {
  const done = (job.steps as Step[]).filter((s) => s.state === 'done').map((s) => s.name);
  expect(new Set(done).size).toBe(done.length);
  return done;
}

describe('routeros-upgrade', () => {
  it('7.16 → 7.20.2 on stable: pre-upgrade backup, install verified, RouterBOOT flashed and verified, two reboots', async () => {
    const site = await w.addSite('fw-stable', { version: '7.16' });
    const reboots = count(site, /^router rebooted$/);
    const installs = count(site, /^router rebooting to install /);
    expect(board(site)).toMatchObject({ 'current-firmware': '7.16', 'upgrade-firmware': '7.16' });

    const job = await upgrade(site);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    const result = job.result as Record<string, unknown>;
    expect(result).toMatchObject({
      from: '7.16',
      to: '7.20.2',
      channel: 'stable',
      pinnedVersion: null,
      policy: 'default',
      routerboot: { current: '7.20.2', upgrade: '7.20.2' },
    });
    // Both versions on the router itself: RouterOS and RouterBOOT.
    expect(w.routers.get(site)!.version).toBe('7.20.2');
    expect(board(site)).toMatchObject({ 'current-firmware': '7.20.2', 'upgrade-firmware': '7.20.2' });
    expect(installs()).toBe(1);
    expect(reboots()).toBe(2);

    // The pre-upgrade backup is a real backup of the site, taken by this job on 7.16.
    const backups = await w.api('GET', `/sites/${site}/backups`);
    const mine = (backups.body.items as { id: string; jobId: string; routerosVersion: string }[]).filter(
      (b) => b.jobId === job.id,
    );
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ id: result['backupId'], routerosVersion: '7.16' });
    const content = await w.api('GET', `/backups/${mine[0]!.id}`);
    expect(content.status).toBe(200);
    expect((content.body as { content: string }).content).toMatch(/^# .* by RouterOS 7\.16\n/);

    const done = expectStepsOnce(job);
    expect(done).toEqual([
      'firmware policy',
      'check for updates',
      'pre-upgrade backup',
      'download and install',
      'back online',
      'verify version',
      'read RouterBOOT',
      'read boot time (RouterBOOT)',
      'upgrade RouterBOOT',
      'reboot for RouterBOOT',
      'back online after RouterBOOT reboot',
      'verify RouterBOOT',
    ]);

    // Again: up to date, RouterBOOT current, nothing installed or rebooted.
    const again = await upgrade(site);
    expect(again.state).toBe('succeeded');
    expect(again.result).toMatchObject({ upToDate: true, version: '7.20.2', routerboot: { current: '7.20.2' } });
    expect(installs()).toBe(1);
    expect(reboots()).toBe(2);
  }, 90_000);

  it('a router without RouterBOOT (CHR/x86) is upgraded with one reboot', async () => {
    const site = await w.addSite('fw-chr', { version: '7.16' });
    const st = w.routers.get(site)!.state;
    st.update('system/routerboard', st.single('system/routerboard'), { routerboard: 'false' });
    const reboots = count(site, /^router rebooted$/);
    const job = await upgrade(site);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    expect(job.result).toMatchObject({ from: '7.16', to: '7.20.2', routerboot: 'not a RouterBOARD' });
    expect(reboots()).toBe(1);
  }, 60_000);
});

describe('routeros-upgrade after a crash', () => {
  it('an install interrupted after it may have been sent, with the router still on the old version: unknown, never sent again', async () => {
    const site = await w.addSite('fw-crashed', { version: '7.16' });
    const installs = count(site, /^router rebooting to install /);
    // The site is offline: the job waits; meanwhile its row gets the steps of a worker that
    // died right after starting the install (the router never actually got it).
    w.offline.add(site);
    const res = await w.api('POST', `/sites/${site}/jobs`, { kind: 'routeros-upgrade', payload: {} });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    await w.waitJob(id, ['waiting']);
    const at = new Date().toISOString();
    const steps = [
      {
        name: 'firmware policy',
        state: 'done',
        at,
        detail: '{"channel":"stable","pinnedVersion":null,"source":"default"}',
      },
      {
        name: 'check for updates',
        state: 'done',
        at,
        detail: '{"channel":"stable","installed":"7.16","latest":"7.20.2"}',
      },
      {
        name: 'pre-upgrade backup',
        state: 'done',
        at,
        detail: '{"backupId":"00000000-0000-4000-8000-000000000001","deduplicated":false}',
      },
      { name: 'download and install', state: 'started', at },
    ];
    await w.h.ds.query(`UPDATE jobs SET steps = $1::jsonb WHERE id = $2`, [JSON.stringify(steps), id]);
    w.offline.delete(site);
    const job = await w.waitJob(id, undefined, 60_000);
    expect(job.state).toBe('unknown');
    expect(job.error).toMatch(/expected RouterOS 7\.20\.2 after the upgrade, router runs 7\.16/);
    expect(installs()).toBe(0);
    expect(w.routers.get(site)!.version).toBe('7.16');
    const done = expectStepsOnce(job);
    expect(done).not.toContain('verify version');
    expect((job.steps as Step[]).filter((s) => s.name === 'download and install' && s.state === 'done')).toEqual([
      expect.objectContaining({ detail: 'the install may have started before the worker restarted: verified below' }),
    ]);
  }, 90_000);
});

describe('firmware policy', () => {
  it('is read by viewers, changed only by admins, validated and audited', async () => {
    const initial = await w.api('GET', '/firmware-policy');
    expect(initial.status).toBe(200);
    expect(initial.body).toMatchObject({ channel: 'stable', pinnedVersion: null, tags: [], updatedAt: null });

    const as = async (role: 'operator' | 'viewer') => {
      const email = `${role}-${Math.random().toString(36).slice(2, 8)}@firmware.test`;
      expect((await addMember(w.h, w.token, w.tenantId, { email, role })).status).toBe(201);
      const token = await login(w.h, email);
      return (method: string, body?: unknown) =>
        w.h.call(method, `/api/v1/tenants/${w.tenantId}/firmware-policy`, {
          token,
          ...(body !== undefined ? { body } : {}),
        });
    };
    const operator = await as('operator');
    expect((await operator('GET')).status).toBe(200);
    expect((await operator('PUT', { channel: 'testing' })).status).toBe(403);

    const bad = await setPolicy({ channel: 'stable', pinnedVersion: '7.16.2; /system reset-configuration' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('pinnedVersion');
    expect((await setPolicy({ channel: 'nightly' })).status).toBe(400);
    const dupes = await setPolicy({
      channel: 'stable',
      tags: [
        { tag: 'a', channel: 'stable' },
        { tag: 'a', channel: 'testing' },
      ],
    });
    expect(dupes.status).toBe(400);

    const ok = await setPolicy({
      channel: 'stable',
      pinnedVersion: null,
      tags: [
        { tag: 'lts', channel: 'long-term', pinnedVersion: '7.16.2' },
        { tag: 'lab', channel: 'testing' },
      ],
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body).toMatchObject({
      channel: 'stable',
      tags: [
        { tag: 'lts', channel: 'long-term', pinnedVersion: '7.16.2' },
        { tag: 'lab', channel: 'testing', pinnedVersion: null },
      ],
    });
    expect((await w.api('GET', '/firmware-policy')).body).toEqual(ok.body);

    // The first matching rule applies to a site carrying both tags.
    const both = (await w.api('POST', '/sites', { name: 'fw-both', tags: ['lab', 'lts'] })).body.id as string;
    expect((await w.api('GET', `/sites/${both}/firmware-policy`)).body).toMatchObject({
      channel: 'long-term',
      pinnedVersion: '7.16.2',
      source: 'tag:lts',
    });

    const audit = await w.api('GET', '/audit-log?action=firmware-policy.updated');
    expect(audit.status).toBe(200);
    const entries = audit.body.items as { before: unknown; after: unknown }[];
    expect(entries).toHaveLength(1);
    expect(entries[0]!.after).toMatchObject({ tags: [{ tag: 'lts', pinnedVersion: '7.16.2' }, { tag: 'lab' }] });
  });

  it('a pin to 7.16.2 (long-term) is installed exactly, never the newer stable', async () => {
    const site = await w.addSite('fw-lts', { version: '7.16', tags: ['lts'] });
    const job = await upgrade(site);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    expect(job.result).toMatchObject({
      from: '7.16',
      to: '7.16.2',
      channel: 'long-term',
      pinnedVersion: '7.16.2',
      policy: 'tag:lts',
      routerboot: { current: '7.16.2', upgrade: '7.16.2' },
    });
    expect(w.routers.get(site)!.version).toBe('7.16.2');
    expect(w.routers.get(site)!.state.single('system/package/update').values['channel']).toBe('long-term');
  }, 60_000);

  it('refuses when the channel offers something else than the pin: nothing installed, no backup', async () => {
    const site = await w.addSite('fw-lts-moved', { version: '7.16', tags: ['lts'] });
    const r = w.routers.get(site)!;
    // MikroTik moved long-term on: the channel no longer offers the pinned 7.16.2.
    r.state.releases = { ...r.state.releases, v7: { ...r.state.releases.v7, 'long-term': '7.16.3' } };
    const installs = count(site, /^router rebooting to install /);
    const job = await upgrade(site);
    expect(job.state).toBe('failed');
    expect(job.error).toMatch(/pinned_version: the long-term channel offers 7\.16\.3, not the pinned 7\.16\.2/);
    expect(installs()).toBe(0);
    expect(r.version).toBe('7.16');
    expect((await w.api('GET', `/sites/${site}/backups`)).body.items).toEqual([]);
    expect(expectStepsOnce(job)).toEqual(['firmware policy', 'check for updates']);
  }, 60_000);

  it("refuses a job that asks for another channel or version than the site's policy", async () => {
    const site = await w.addSite('fw-lts-asks', { version: '7.16', tags: ['lts'] });
    const installs = count(site, /^router rebooting to install /);
    const channel = await upgrade(site, { channel: 'stable' });
    expect(channel.state).toBe('failed');
    expect(channel.error).toMatch(/firmware_policy: .*tag:lts.* long-term channel; the job asked for stable/);
    const version = await upgrade(site, { version: '7.20.2' });
    expect(version.state).toBe('failed');
    expect(version.error).toMatch(/pins this site to 7\.16\.2; the job asked for 7\.20\.2/);
    expect(installs()).toBe(0);
    // A malformed version never reaches a worker.
    const bad = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'routeros-upgrade',
      payload: { version: 'latest' },
    });
    expect(bad.status).toBe(400);
  }, 60_000);

  it('a router already newer than its pin is not downgraded', async () => {
    const site = await w.addSite('fw-newer', { version: '7.18', tags: ['lts'] });
    const job = await upgrade(site);
    expect(job.state).toBe('failed');
    expect(job.error).toMatch(/runs 7\.18, newer than the pinned 7\.16\.2/);
    expect(w.routers.get(site)!.version).toBe('7.18');
  }, 60_000);

  it('a bulk upgrade with a target version (what a rollout wave runs): the target everywhere the policy allows it', async () => {
    const policy = await setPolicy({
      channel: 'stable',
      tags: [{ tag: 'lts', channel: 'long-term', pinnedVersion: '7.16.2' }],
    });
    expect(policy.status).toBe(200);
    const fleet: string[] = [];
    for (let i = 0; i < 3; i++) fleet.push(await w.addSite(`fw-wave-${i}`, { version: '7.16', tags: ['wave'] }));
    const pinned = await w.addSite('fw-wave-lts', { version: '7.16', tags: ['wave', 'lts'] });
    // MikroTik moved stable on for one router (its mirror is ahead): it gets nothing, not 7.20.3.
    const ahead = w.routers.get(fleet[2]!)!;
    ahead.state.releases = { ...ahead.state.releases, v7: { ...ahead.state.releases.v7, stable: '7.20.3' } };
    const res = await w.api('POST', '/jobs/bulk', {
      kind: 'routeros-upgrade',
      tags: ['wave'],
      payload: { version: '7.20.2' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.batch.total).toBe(4);
    const end = Date.now() + 90_000;
    let status = res.body.batch as { done: boolean };
    while (!status.done && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 300));
      status = (await w.api('GET', `/job-batches/${res.body.batch.id}`)).body;
    }
    expect(status).toMatchObject({ done: true, finished: 4, states: { succeeded: 2, failed: 2 } });
    expect(ahead.version).toBe('7.16');
    for (const id of fleet.slice(0, 2)) {
      expect(w.routers.get(id)!.version).toBe('7.20.2');
      expect(board(id)['current-firmware']).toBe('7.20.2');
    }
    // The site whose tag pins 7.16.2 is left alone.
    expect(w.routers.get(pinned)!.version).toBe('7.16');
  }, 120_000);
});
