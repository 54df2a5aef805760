/**
 * The worker's job metrics (issue 13, defect 10), read from its registry as /metrics serves
 * it: jobs finished by kind and final state, the run-time histogram, queue depth, jobs
 * waiting for their site, and lock takeovers (a `running` job whose worker is gone).
 */
import { createMetricsRegistry } from '@backplane/observability';
import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let registry: Registry;

beforeAll(async () => {
  w = await jobsWorld();
  registry = createMetricsRegistry('worker');
  w.startRunner(4, registry);
}, 60_000);

afterAll(async () => {
  await w?.close();
});

/** The value of one sample in the Prometheus text exposition (undefined when absent). */
async function sample(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('worker job metrics', () => {
  it('count finished jobs by kind and state, time them, and show queue depth', async () => {
    const site = await w.addSite('metrics-1');
    const ok = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'run-command',
      payload: { command: '/system/identity/print' },
    });
    const bad = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'run-command',
      payload: { command: '/no/such/menu/print' },
    });
    expect((await w.waitJob(ok.body.id as string)).state).toBe('succeeded');
    expect((await w.waitJob(bad.body.id as string)).state).toBe('failed');

    expect(await sample('backplane_worker_jobs_finished_total', { kind: 'run-command', state: 'succeeded' })).toBe(1);
    expect(await sample('backplane_worker_jobs_finished_total', { kind: 'run-command', state: 'failed' })).toBe(1);
    expect(await sample('backplane_worker_job_duration_seconds_count', { kind: 'run-command' })).toBe(2);
    expect(await sample('backplane_worker_job_duration_seconds_sum', { kind: 'run-command' })).toBeGreaterThan(0);
    for (const state of ['waiting', 'active', 'delayed'])
      expect(await sample('backplane_worker_queue_jobs', { state })).toBe(0);
    expect(await sample('backplane_worker_site_lock_takeovers_total')).toBe(0);
  });

  it('count jobs waiting for their site and a takeover of a job whose worker is gone', async () => {
    const site = await w.addSite('metrics-2');
    w.offline.add(site);
    const job = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'run-command',
      payload: { command: '/system/identity/print' },
    });
    const id = job.body.id as string;
    await w.waitJob(id, ['waiting']);
    // the reconciler (every 2 s here) counts it; the job sits delayed in the queue
    await expect.poll(() => sample('backplane_worker_jobs_waiting_for_site'), { timeout: 10_000 }).toBe(1);
    expect(await sample('backplane_worker_queue_jobs', { state: 'delayed' })).toBe(1);

    // as if a worker had started it and died (its site lock lapsed): the next run takes it over
    await w.h.ds.query(`UPDATE jobs SET state = 'running', started_at = now() WHERE id = $1`, [id]);
    w.offline.delete(site);
    expect((await w.waitJob(id, undefined, 60_000)).state).toBe('succeeded');
    expect(await sample('backplane_worker_site_lock_takeovers_total')).toBe(1);
    expect(await sample('backplane_worker_jobs_finished_total', { kind: 'run-command', state: 'succeeded' })).toBe(2);
    await expect.poll(() => sample('backplane_worker_jobs_waiting_for_site'), { timeout: 10_000 }).toBe(0);
  }, 90_000);
});
