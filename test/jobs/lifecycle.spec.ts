/**
 * A job's life as the portal sees it and the jobs nobody asks for by hand: the ordered
 * `job.progress` / `backup.created` tenant events of a run (read back from the realtime
 * backlog), restore of a backup onto a changed router, and the scheduled backup tick run
 * by two workers at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobProgressData, TenantEvent } from '@backplane/contracts';
import { exportWithoutHeader } from '@backplane/jobs';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { replaySince } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { BackupScheduler, Schedules } from '../../apps/worker/src/schedules';
import { client } from '../realtime/realtime-helpers';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-lifecycle-'));
  w = await jobsWorld({ DATA_DIR: dir });
  w.startRunner();
}, 60_000);

afterAll(async () => {
  await w?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function tenantEvents(): Promise<TenantEvent[]> {
  const replay = await replaySince(w.h.redis, w.events.keys, w.tenantId, 0);
  if (replay.kind !== 'events') throw new Error('backlog no longer reaches back');
  return [...replay.events];
}

async function progressOf(jobId: string): Promise<(JobProgressData & { seq: number })[]> {
  return (await tenantEvents()).flatMap((e) =>
    e.type === 'job.progress' && e.data.jobId === jobId ? [{ ...e.data, seq: e.seq }] : [],
  );
}

const TERMINAL = ['succeeded', 'failed', 'cancelled', 'expired'];

/** The router's configuration as `/export show-sensitive` prints it, without the date line. */
async function routerExport(r: SimRouter): Promise<string> {
  const res = await runScript(r, '/export show-sensitive');
  expect(res.error).toBeUndefined();
  return exportWithoutHeader(res.output.join('\n'));
}

describe('live progress', () => {
  it('a job run publishes an ordered sequence of job.progress events ending in its terminal state', async () => {
    const site = await w.addSite('live');
    // Steps are per-job detail (ADR 0079): only a socket watching the job or its site gets them.
    const watcher = client(w.base, w.tenantId, w.token);
    const details: JobProgressData[] = [];
    watcher.rt.on('job', (d) => details.push(d));
    await watcher.connected();
    await watcher.rt.watch({ siteId: site });
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: {
        changes: [
          { menu: 'dns', servers: ['9.9.9.9'] },
          { menu: 'identity', name: 'live-1' },
        ],
      },
    });
    expect(res.status).toBe(201);
    const done = await w.waitJob(res.body.id);
    expect(done.state).toBe('succeeded');
    await expect.poll(async () => (await progressOf(res.body.id)).at(-1)?.state).toBe('succeeded');
    const events = await progressOf(res.body.id);
    // Sequence numbers strictly increase; queued first (the api), then the worker's run.
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
    expect(new Set(events.map((e) => e.seq)).size).toBe(events.length);
    expect(events[0]).toMatchObject({ state: 'queued', siteId: site, kind: 'apply-config', batchId: null });
    expect(events[1]).toMatchObject({ state: 'running' });
    expect(events.filter((e) => TERMINAL.includes(e.state))).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ state: 'succeeded', progress: 1 });
    // The tenant sees the states, not the steps; the watcher sees every recorded step, in the
    // order the job ran them, with progress never going back.
    expect(events.map((e) => e.state)).toEqual(['queued', 'running', 'succeeded']);
    expect(events.filter((e) => e.step)).toEqual([]);
    await expect.poll(() => details.at(-1)?.state).toBe('succeeded');
    const steps = details.flatMap((d) => d.steps ?? []);
    expect([...new Set(steps)]).toEqual([
      'lockout check',
      'arm rollback',
      'check every change',
      'apply 1/2 dns',
      'apply 2/2 identity',
      'confirm reachable',
      'disarm rollback',
    ]);
    const progress = [...events, ...details].map((e) => e.progress ?? 0);
    expect(details.map((e) => e.progress ?? 0)).toEqual([...details.map((e) => e.progress ?? 0)].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(1);
    watcher.rt.close();
    // The row agrees with the last event.
    expect((done.steps as { name: string }[]).map((s) => s.name)).toEqual(
      expect.arrayContaining(['apply 1/2 dns', 'apply 2/2 identity']),
    );
  });

  it('an offline site shows waiting, then running when it is back; a backup announces itself', async () => {
    const site = await w.addSite('live-offline');
    w.offline.add(site);
    const res = await w.api('POST', `/sites/${site}/backups`);
    await w.waitJob(res.body.id, ['waiting']);
    await new Promise((r) => setTimeout(r, 2500)); // several retries while offline
    w.offline.delete(site);
    const done = await w.waitJob(res.body.id);
    expect(done.state).toBe('succeeded');
    await expect.poll(async () => (await progressOf(res.body.id)).at(-1)?.state).toBe('succeeded');
    const states = (await progressOf(res.body.id)).map((e) => e.state);
    // One `waiting` however many retries it took (a repeated wait is not news).
    expect(states.filter((s) => s === 'waiting')).toHaveLength(1);
    expect(states.indexOf('queued')).toBe(0);
    expect(states.indexOf('waiting')).toBeLessThan(states.indexOf('running'));
    const backupId = (done.result as { backupId: string }).backupId;
    const created = (await tenantEvents()).filter((e) => e.type === 'backup.created' && e.data.siteId === site);
    expect(created.map((e) => e.data)).toEqual([{ siteId: site, backupId, changed: true }]);
    // Nothing changed: the next backup is deduplicated and says so.
    await w.waitJob((await w.api('POST', `/sites/${site}/backups`)).body.id);
    const again = (await tenantEvents()).filter((e) => e.type === 'backup.created' && e.data.siteId === site);
    expect(again.map((e) => e.data)).toEqual([
      { siteId: site, backupId, changed: true },
      { siteId: site, backupId, changed: false },
    ]);
  }, 30_000);

  it('cancelling a waiting job publishes cancelled once', async () => {
    const site = await w.addSite('live-cancel');
    w.offline.add(site);
    const res = await w.api('POST', `/sites/${site}/jobs`, { kind: 'reboot', payload: {} });
    await w.waitJob(res.body.id, ['waiting']);
    await w.api('POST', `/jobs/${res.body.id}/cancel`);
    await w.api('POST', `/jobs/${res.body.id}/cancel`);
    w.offline.delete(site);
    await new Promise((r) => setTimeout(r, 1500));
    const states = (await progressOf(res.body.id)).map((e) => e.state);
    expect(states).toEqual(['queued', 'waiting', 'cancelled']);
  });
});

describe('cancel while running', () => {
  it('stops before its next step: the steps done stay applied, none half-started, cancelled once', async () => {
    const site = await w.addSite('cancel-running');
    const r = w.routers.get(site)!;
    r.faults.latencyMs = 40;
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: {
        changes: Array.from({ length: 30 }, (_, i) => ({
          menu: 'address-list',
          list: 'cr',
          addresses: [`10.8.${i}.0/24`],
        })),
      },
    });
    const doneSteps = (j: Record<string, unknown>) =>
      (j.steps as { name: string; state: string }[]).filter((s) => s.state === 'done' && s.name.startsWith('apply '));
    await expect
      .poll(async () => doneSteps(await w.job(res.body.id)).length, { timeout: 15_000 })
      .toBeGreaterThanOrEqual(2);
    const c = await w.api('POST', `/jobs/${res.body.id}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body.state).toBe('running'); // it stops at its next step
    const end = await w.waitJob(res.body.id);
    expect(end.state).toBe('cancelled');
    expect(end.error).toBe('cancelled while running');
    const steps = end.steps as { name: string; state: string }[];
    const applied = doneSteps(end).length;
    expect(applied).toBeLessThan(30);
    // Every step that started also finished; the router has exactly what those steps applied.
    const unfinished = steps
      .filter((s) => s.state === 'started')
      .filter((s) => !steps.some((d) => d.name === s.name && d.state === 'done'));
    expect(unfinished).toEqual([]);
    const list = r.state.items('ip/firewall/address-list').filter((a) => a.values['list'] === 'cr');
    expect(list).toHaveLength(applied);
    await expect.poll(async () => (await progressOf(res.body.id)).at(-1)?.state).toBe('cancelled');
    const states = (await progressOf(res.body.id)).map((e) => e.state);
    expect(states.filter((x) => TERMINAL.includes(x))).toEqual(['cancelled']);
  }, 30_000);
});

describe('restore', () => {
  it('restores a backup onto a changed router: its export equals the backup, audited, before/after recorded', async () => {
    const site = await w.addSite('restore-me');
    const r = w.routers.get(site)!;
    await w.waitJob(
      (
        await w.api('POST', `/sites/${site}/jobs`, {
          kind: 'apply-config',
          payload: {
            changes: [
              { menu: 'dns', servers: ['1.1.1.1'] },
              { menu: 'identity', name: 'good "config" $1' },
              { menu: 'address-list', list: 'keep', addresses: ['198.51.100.1'] },
            ],
          },
        })
      ).body.id,
    );
    const b = await w.waitJob((await w.api('POST', `/sites/${site}/backups`)).body.id);
    const backupId = (b.result as { backupId: string }).backupId;
    const stored = (await w.api('GET', `/backups/${backupId}`)).body.content as string;
    const good = await routerExport(r);
    expect(exportWithoutHeader(stored)).toBe(good);

    // The router drifts: other DNS, identity, an extra address-list entry and an address.
    await w.waitJob(
      (
        await w.api('POST', `/sites/${site}/jobs`, {
          kind: 'apply-config',
          payload: {
            changes: [
              { menu: 'dns', servers: ['8.8.8.8'] },
              { menu: 'identity', name: 'drifted' },
              { menu: 'address-list', list: 'keep', addresses: ['203.0.113.9'] },
            ],
          },
        })
      ).body.id,
    );
    expect((await runScript(r, '/ip address add address=192.0.2.77/24 interface=ether2')).error).toBeUndefined();
    const drifted = await routerExport(r);
    expect(drifted).not.toBe(good);

    const res = await w.api('POST', `/backups/${backupId}/restore`);
    expect(res.status).toBe(201);
    const done = await w.waitJob(res.body.id, undefined, 30_000);
    expect(done.state).toBe('succeeded');
    expect(done.kind).toBe('restore');
    expect(
      (done.steps as { name: string; state: string }[]).filter((s) => s.state === 'done').map((s) => s.name),
    ).toEqual([
      'lockout check',
      'arm rollback',
      'upload',
      'read boot time',
      'reset and import',
      'back online',
      'verify',
      'confirm reachable',
      'disarm rollback',
    ]);
    // On the router: exactly the backed-up configuration, the drift gone.
    const now = await routerExport(r);
    expect(now).toBe(good);
    expect(r.identity).toBe('good "config" $1');
    expect(now).not.toContain('203.0.113.9');
    expect(now).not.toContain('192.0.2.77');

    const ex = await w.api('GET', `/jobs/${res.body.id}/exports`);
    expect(ex.status).toBe(200);
    expect(exportWithoutHeader(ex.body.before as string)).toBe(drifted);
    expect(exportWithoutHeader(ex.body.after as string)).toBe(good);
    expect(ex.body.diff).toContain('-add list=keep address=203.0.113.9');

    const audit = await w.api('GET', `/audit-log?action=job.restore`);
    expect(audit.status).toBe(200);
    expect(JSON.stringify(audit.body)).toContain(backupId);
  }, 60_000);
});

/** A site onboarded through the pasted one-liner (the scheduler backs up onboarded sites only). */
async function onboarded(name: string): Promise<{ id: string; r: SimRouter }> {
  const site = await w.api('POST', '/sites', { name });
  const id = site.body.id as string;
  const cmd = await w.api('POST', `/sites/${id}/onboarding`);
  const r = await startRouter({});
  w.routers.set(id, r);
  w.ports.set(id, r.port);
  expect((await runScript(r, cmd.body.command as string)).error).toBeUndefined();
  expect((await runScript(r, '/ip service set [find name=api] address=127.0.0.1/32')).error).toBeUndefined();
  // Its first poll (the scheduler the script armed) completes the onboarding.
  const poll = r.state.items('system/scheduler').find((i) => i.values['name'] === 'bp-poll')!.values['on-event']!;
  expect((await runScript(r, poll)).error).toBeUndefined();
  return { id, r };
}

describe('scheduled backups', () => {
  it('two workers with a 2-second schedule: one backup job per site per tick, deduplicated when nothing changed', async () => {
    const a = await onboarded('sched-a');
    const b = await onboarded('sched-b');
    const notOnboarded = await w.addSite('sched-not-onboarded');
    const conn = { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` };
    const logger = createLogger({ app: 'scheduler-test', level: 'warn' });
    // two worker processes' schedules: the scheduled-backups job scheduler on a 2-second cron
    const backups = [0, 1].map(() => new BackupScheduler(w.h.db, conn, logger, w.events));
    const workers = backups.map(
      (b) =>
        new Schedules([{ name: 'scheduled-backups', repeat: { cron: '*/2 * * * * *' }, run: (at) => b.tick(at) }], {
          queue: conn,
          logger,
          reconcileEveryMs: 1000,
        }),
    );
    const t0 = Date.now();
    await Promise.all(workers.map((s) => s.start()));
    await new Promise((r) => setTimeout(r, 7000));
    await Promise.all(workers.map((s) => s.stop()));
    await Promise.all(backups.map((b) => b.close()));
    // the job scheduler stays in Redis for the other workers; removed here so nothing ticks on
    const off = new Schedules([{ name: 'scheduled-backups', repeat: 'off', run: () => Promise.resolve() }], {
      queue: conn,
      logger,
      reconcileEveryMs: 0,
    });
    await off.reconcile();
    await off.stop();
    const elapsed = Date.now() - t0;

    const jobs = await w.h.ds.query<{ site_id: string; idempotency_key: string; id: string }[]>(
      `SELECT site_id, idempotency_key, id FROM jobs WHERE kind = 'backup' AND payload->>'reason' = 'scheduled'`,
    );
    const keysOf = (site: string) => jobs.filter((j) => j.site_id === site).map((j) => j.idempotency_key);
    const ticks = [...new Set(jobs.map((j) => j.idempotency_key))].sort();
    // Ticks are the planned occurrences (on the 2-second grid), not one per worker.
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    expect(ticks.length).toBeLessThanOrEqual(Math.floor(elapsed / 2000) + 1);
    for (const k of ticks) expect(Date.parse(k.replace(/^scheduled-/, '')) % 2000).toBe(0);
    // Exactly one job per site per tick, none for a site that is not onboarded.
    expect(keysOf(a.id).sort()).toEqual(ticks);
    expect(keysOf(b.id).sort()).toEqual(ticks);
    expect(keysOf(notOnboarded)).toEqual([]);

    for (const j of jobs) expect((await w.waitJob(j.id, undefined, 30_000)).state).toBe('succeeded');
    const results = async (site: string) =>
      (
        await w.h.ds.query<{ result: { deduplicated: boolean; backupId: string } }[]>(
          `SELECT result FROM jobs WHERE site_id = $1 AND kind = 'backup' ORDER BY created_at`,
          [site],
        )
      ).map((r) => r.result);
    for (const site of [a.id, b.id]) {
      const rs = await results(site);
      expect(rs.map((r) => r.deduplicated)).toEqual([false, ...rs.slice(1).map(() => true)]);
      expect(new Set(rs.map((r) => r.backupId)).size).toBe(1);
      expect((await w.api('GET', `/sites/${site}/backups`)).body.items).toHaveLength(1);
    }

    // A change on one site: the next tick stores a new version for it only.
    expect((await runScript(a.r, '/ip dns set servers=9.9.9.9')).error).toBeUndefined();
    const s = new BackupScheduler(w.h.db, conn, logger, w.events);
    expect(await s.tick(Date.UTC(2030, 0, 1, 3))).toBeGreaterThanOrEqual(2);
    expect(await s.tick(Date.UTC(2030, 0, 1, 3))).toBe(0); // the same tick again: nothing new
    await s.close();
    await expect
      .poll(async () => ((await w.api('GET', `/sites/${a.id}/backups`)).body.items as unknown[]).length, {
        timeout: 20_000,
      })
      .toBe(2);
    await expect.poll(async () => (await results(b.id)).length, { timeout: 20_000 }).toBe(ticks.length + 1);
    await expect.poll(async () => (await results(b.id)).at(-1)?.deduplicated, { timeout: 20_000 }).toBe(true);
    expect((await w.api('GET', `/sites/${b.id}/backups`)).body.items).toHaveLength(1);

    // Paged (issue 19): one onboarded site per query still reaches every site once, in one
    // batch per tenant whose total counts the tick's jobs; announced as one `job.batch` per page.
    const paged = new BackupScheduler(w.h.db, conn, logger, w.events);
    const at = Date.UTC(2030, 0, 1, 4);
    const all = await w.h.ds.query<{ n: number }[]>(`SELECT count(*)::int AS n FROM bp_onboarded_sites()`);
    expect(await paged.tick(at, 1)).toBe(all[0]!.n);
    expect(await paged.tick(at, 1)).toBe(0);
    await paged.close();
    const key = `scheduled-${new Date(at).toISOString()}`;
    const made = await w.h.ds.query<{ site_id: string; batch_id: string; id: string }[]>(
      `SELECT site_id, batch_id, id FROM jobs WHERE tenant_id = $1 AND idempotency_key = $2`,
      [w.tenantId, key],
    );
    expect(made.map((j) => j.site_id).sort()).toEqual([a.id, b.id].sort());
    const batch = await w.h.ds.query<{ total: number }[]>(`SELECT total FROM job_batches WHERE id = $1`, [
      made[0]!.batch_id,
    ]);
    expect(batch[0]!.total).toBe(2);
    for (const j of made) expect((await w.waitJob(j.id, undefined, 30_000)).state).toBe('succeeded');
  }, 120_000);
});
