/**
 * Jobs for a site that stays offline end as `expired` when their expiry passes (JOB_TTL,
 * here 3 s), with a clear reason, and never run afterwards.
 */
import { replaySince } from '@backplane/realtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;

beforeAll(async () => {
  w = await jobsWorld({ JOB_TTL: '3' });
  w.startRunner();
}, 60_000);

afterAll(async () => {
  await w?.close();
});

describe('job expiry', () => {
  it('a job for an offline site expires when its expiry passes and is not applied when the site returns', async () => {
    const site = await w.addSite('gone');
    const before = w.routers.get(site)!.identity;
    w.offline.add(site);
    const t0 = Date.now();
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'too-late' }] },
    });
    expect(res.status).toBe(201);
    const expiresAt = Date.parse(res.body.expiresAt as string);
    expect(expiresAt - Date.parse(res.body.createdAt as string)).toBe(3000);
    await w.waitJob(res.body.id, ['waiting'], 5000);
    const done = await w.waitJob(res.body.id, undefined, 15_000);
    expect(done.state).toBe('expired');
    // Ended promptly after the expiry (the backoff does not sleep past it).
    const finished = Date.parse(done.finishedAt as string);
    expect(finished).toBeGreaterThanOrEqual(expiresAt);
    expect(finished - expiresAt).toBeLessThan(5000);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(done.error).toMatch(/^expired at .* before it could run: the site stayed unreachable \(last: site offline/);
    expect(done.startedAt).toBeNull();
    expect(done.steps).toEqual([]);

    // The site comes back: nothing runs, the state stays expired.
    w.offline.delete(site);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await w.job(res.body.id)).state).toBe('expired');
    expect(w.routers.get(site)!.identity).toBe(before);

    const replay = await replaySince(w.h.redis, w.events.keys, w.tenantId, 0);
    const states =
      replay.kind === 'events'
        ? replay.events.flatMap((e) =>
            e.type === 'job.progress' && e.data.jobId === res.body.id ? [e.data.state] : [],
          )
        : [];
    expect(states).toEqual(['queued', 'waiting', 'expired']);
  }, 30_000);
});
