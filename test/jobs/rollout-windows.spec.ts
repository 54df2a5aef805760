/**
 * A rollout's wave respects maintenance windows (issue 18 gaps, docs/adr/0097): when a wave
 * starts, the job of a site outside its window is held (`waiting` until the next opening)
 * and nothing reaches that router, while a site without windows runs at once.
 */
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutAdvancer } from '../../apps/worker/src/schedules/rollouts';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner(2);
}, 60_000);
afterAll(async () => {
  await w?.close();
});

function advancer(): RolloutAdvancer {
  return new RolloutAdvancer({
    db: w.h.db,
    queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
    logger: createLogger({ app: 'worker-test', level: 'warn' }),
    realtime: { publish: (tenantId, e) => w.events.publish(tenantId, e) },
    channel: w.channel,
    keyring: w.keyring,
  });
}

const UTC_HHMM = (d: Date) => d.toISOString().slice(11, 16);

describe('rollout waves and maintenance windows', () => {
  it('a site outside its window gets its wave job held; a site without windows runs; the router outside stays untouched', async () => {
    const free = await w.addSite('roll-free', { tags: ['roll'] });
    const closed = await w.addSite('roll-closed', { tags: ['roll', 'nightly'] });
    // A daily window (UTC) that opens in two hours.
    const opens = new Date(Math.ceil((Date.now() + 2 * 3600_000) / 60_000) * 60_000);
    const win = await w.api('POST', '/maintenance-windows', {
      name: 'nightly',
      tag: 'nightly',
      days: [1, 2, 3, 4, 5, 6, 7],
      start: UTC_HHMM(opens),
      durationMinutes: 30,
    });
    expect(win.status).toBe(201);

    const res = await w.api('POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'rolled' }] },
      tags: ['roll'],
      waves: [2],
      gates: { siteOnline: false, tunnelUp: false },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const id = res.body.id as string;

    const a = advancer();
    await a.tick();
    await a.close();
    const jobs = await w.h.ds.query<
      { id: string; site_id: string; state: string; error: string | null; not_before: Date | null }[]
    >(`SELECT id, site_id, state, error, not_before FROM jobs WHERE site_id = ANY($1::uuid[])`, [[free, closed]]);
    expect(jobs).toHaveLength(2);
    const freeJob = jobs.find((j) => j.site_id === free)!;
    const heldJob = jobs.find((j) => j.site_id === closed)!;
    expect(heldJob.state).toBe('waiting');
    expect(heldJob.error).toBe(`waiting for maintenance window "nightly" (opens ${opens.toISOString()}, UTC)`);
    expect(heldJob.not_before!.toISOString()).toBe(opens.toISOString());

    expect((await w.waitJob(freeJob.id)).state).toBe('succeeded');
    expect(w.routers.get(free)!.state.single('system/identity').values['name']).toBe('rolled');
    // The held one has not run, and the wave is still running (not passed, not halted).
    await new Promise((r) => setTimeout(r, 2000));
    expect((await w.job(heldJob.id)).state).toBe('waiting');
    expect(w.routers.get(closed)!.state.single('system/identity').values['name']).toBe('MikroTik');
    const b = advancer();
    await b.tick();
    await b.close();
    const r = (await w.api('GET', `/rollouts/${id}`)).body as { state: string; waves: { state: string }[] };
    expect(r.state).toBe('running');
    expect(r.waves[0]!.state).toBe('running');
    expect((await w.api('POST', `/rollouts/${id}/abort`, {})).status).toBe(200);
  }, 60_000);
});
