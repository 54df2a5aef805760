/**
 * Coalesced job events (ADR 0079, issue 19 part 3): a rollout to many sites reaches every
 * socket of the tenant as one `job.batch` event per batch per interval — no per-job, per-step
 * `job.progress` — while a socket that watches a job's site gets that job's detail (every
 * state and step) and nothing of the other sites' jobs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobProgressData } from '@backplane/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsWorld, type JobsWorld } from '../jobs/fixture';
import { client as rawClient, sleep, until } from './realtime-helpers';

/** A portal-like client: after `resync` (first connect to a tenant with history) it continues from the seq given. */
function client(...args: Parameters<typeof rawClient>) {
  const c = rawClient(...args);
  c.rt.onResync((seq) => c.rt.setLastSeq(seq));
  return c;
}

let w: JobsWorld;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-job-events-'));
  w = await jobsWorld({ DATA_DIR: dir });
  w.startRunner(4);
}, 60_000);

afterAll(async () => {
  await w?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('coalesced job events', () => {
  it('a tenant socket gets batch progress, not per-step events; a socket watching a site gets its job in detail', async () => {
    const sites: string[] = [];
    for (let i = 0; i < 6; i++) sites.push(await w.addSite(`co-${i}`, { tags: ['co'] }));
    const watched = sites[0]!;
    const plain = client(w.base, w.tenantId, w.token);
    const watcher = client(w.base, w.tenantId, w.token);
    const details: JobProgressData[] = [];
    const plainDetails: JobProgressData[] = [];
    watcher.rt.on('job', (d) => details.push(d));
    plain.rt.on('job', (d) => plainDetails.push(d));
    await Promise.all([plain.connected(), watcher.connected()]);
    await watcher.rt.watch({ siteId: watched });
    await sleep(100);

    const res = await w.api('POST', '/jobs/bulk', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
      tags: ['co'],
    });
    expect(res.status).toBe(201);
    const batchId = (res.body as { batch: { id: string } }).batch.id;
    await until(
      async () => {
        const b = await w.api('GET', `/job-batches/${batchId}`);
        return (b.body as { done: boolean }).done;
      },
      30_000,
      'the batch to finish',
    );
    // Every socket of the tenant: the batch's counts, summed over the intervals, reach 6 succeeded.
    const batchTotals = () =>
      plain.events
        .flatMap((e) => (e.type === 'job.batch' && e.data.batchId === batchId ? [e.data] : []))
        .reduce<Record<string, number>>((acc, d) => {
          for (const [s, n] of Object.entries(d.states)) acc[s] = (acc[s] ?? 0) + n;
          return acc;
        }, {});
    await until(() => batchTotals()['succeeded'] === 6, 5000, 'job.batch events counting 6 succeeded');
    expect(batchTotals()['queued']).toBe(6);
    // No per-job event of the batch, no step, to the tenant: at most a few batch events.
    expect(plain.events.filter((e) => e.type === 'job.progress')).toEqual([]);
    const batchEvents = plain.events.filter((e) => e.type === 'job.batch');
    expect(batchEvents.length).toBeLessThan(6 * 4);
    expect(plainDetails).toEqual([]);
    // The watcher: the tenant events too, and its site's job in detail — steps and the end.
    expect(watcher.events.filter((e) => e.type === 'job.batch').length).toBe(batchEvents.length);
    await until(() => details.some((d) => d.state === 'succeeded'), 5000, 'the watched job to end');
    expect(new Set(details.map((d) => d.siteId))).toEqual(new Set([watched]));
    expect(details.every((d) => d.batchId === batchId)).toBe(true);
    expect(details.some((d) => d.step !== undefined)).toBe(true);
    expect(details.at(-1)).toMatchObject({ state: 'succeeded', progress: 1 });
    plain.rt.close();
    watcher.rt.close();
  }, 60_000);

  it('a single job: its state changes reach every socket, its steps only the sockets watching it', async () => {
    const site = await w.addSite('single');
    const plain = client(w.base, w.tenantId, w.token);
    const watcher = client(w.base, w.tenantId, w.token);
    const details: JobProgressData[] = [];
    watcher.rt.on('job', (d) => details.push(d));
    await Promise.all([plain.connected(), watcher.connected()]);
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'single-1' }] },
    });
    expect(res.status).toBe(201);
    const jobId = res.body.id as string;
    await watcher.rt.watch({ jobId });
    expect((await w.waitJob(jobId)).state).toBe('succeeded');
    const states = () =>
      plain.events.flatMap((e) => (e.type === 'job.progress' && e.data.jobId === jobId ? [e.data] : []));
    await until(() => states().at(-1)?.state === 'succeeded', 5000, 'the tenant to see it succeed');
    expect(states().map((d) => d.state)).toEqual(['queued', 'running', 'succeeded']);
    expect(states().filter((d) => d.step !== undefined)).toEqual([]);
    await until(() => details.at(-1)?.state === 'succeeded', 5000, 'the watcher to see it succeed');
    expect(details.every((d) => d.jobId === jobId)).toBe(true);
    plain.rt.close();
    watcher.rt.close();
  }, 60_000);

  it('refuses a malformed watch and more than 100 watches per socket', async () => {
    const c = client(w.base, w.tenantId, w.token);
    await c.connected();
    await expect(c.rt.watch({ jobId: 'nope' })).rejects.toThrow(/jobId/);
    const ids = Array.from({ length: 100 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    for (const jobId of ids) await c.rt.watch({ jobId });
    await expect(c.rt.watch({ siteId: '00000000-0000-4000-8000-999999999999' })).rejects.toThrow(/at most 100/);
    await c.rt.unwatch({ jobId: ids[0]! });
    await c.rt.watch({ siteId: '00000000-0000-4000-8000-999999999999' });
    c.rt.close();
  });
});
