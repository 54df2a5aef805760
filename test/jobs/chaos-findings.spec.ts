/**
 * What the randomized fault campaign (docs/reliability.md) found after fencing and verified
 * effects landed, each reproduced at the one moment that matters:
 * - a reboot "verified" by a late uptime reply: the boot time computed from the local clock
 *   when the reply is read moves later by however long the reply took, so a router that never
 *   rebooted looked rebooted (seed 15: a reboot `succeeded`, no /system/reboot executed);
 * - a job delayed (its site offline) right as Redis lost its queue entry ended `failed` with
 *   BullMQ's "Missing key for job … moveToDelayed" (faults.spec, Redis restarted empty);
 * - the site lock lost while a job ran (its worker stalled past the lock TTL): another job
 *   ran on the site, and the first carried on as if it still had the site — two executors
 *   on one router (the job lease fences one job, not the site).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@backplane/testing';
import { JOBS_QUEUE } from '@backplane/jobs';
import { SiteUnreachableError, type RouterChannel } from '../../apps/worker/src/jobs/channel';
import type { JobRunner } from '../../apps/worker/src/jobs/runner';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
const runners: JobRunner[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  w = await jobsWorld();
}, 60_000);

afterEach(async () => {
  for (const r of runners.splice(0)) await r.close();
  w.runner = undefined;
});

afterAll(async () => {
  await w?.close();
});

async function enqueue(site: string, kind: string, payload: unknown): Promise<string> {
  const res = await w.api('POST', `/sites/${site}/jobs`, { kind, payload });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

/** The router's own count of reboots (its log is emptied by a reboot, so count as it happens). */
function countLog(site: string, re: RegExp): () => number {
  let n = 0;
  w.routers.get(site)!.state.onChange((e) => {
    if (e.store === 'log' && e.item && re.test(e.item.values['message'] ?? '')) n++;
  });
  return () => n;
}

describe('reboot verification by boot time', () => {
  it('the reboot is lost and the next uptime reply is read 2.5 s late: not succeeded', async () => {
    const site = await w.addSite('late-uptime');
    const rebooted = countLog(site, /system rebooted by/);
    let lost = false;
    let late = 0;
    const channel: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, command, attributes, timeoutMs) => {
        // The reboot never reaches the router: its connection was dead (a link reset).
        if (command === '/system/reboot') {
          lost = true;
          throw new SiteUnreachableError('router_unreachable', 'connection reset');
        }
        const res = await w.channel.call(target, command, attributes, timeoutMs);
        // The first uptime reading after it is read late (the worker stalled, a slow link):
        // the router computed the uptime 2.5 s before the worker sees it.
        if (lost && command === '/system/resource/print' && late++ === 0) await sleep(2500);
        return res;
      },
    };
    const worker = w.startRunner(1, undefined, { channel, effectWaitMs: 3000 });
    runners.push(worker);
    const id = await enqueue(site, 'reboot', {});
    const done = await w.waitJob(id, undefined, 40_000);
    expect(lost).toBe(true);
    expect(late).toBeGreaterThan(0);
    expect(rebooted()).toBe(0);
    expect(done.state, JSON.stringify(done)).toBe('failed');
    expect(String(done.error)).toContain('did not reboot');
  }, 60_000);

  it('a reboot that went through, read back over a slow link, is still verified', async () => {
    const site = await w.addSite('slow-uptime');
    const rebooted = countLog(site, /system rebooted by/);
    const channel: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, command, attributes, timeoutMs) => {
        const res = await w.channel.call(target, command, attributes, timeoutMs);
        if (command === '/system/resource/print') await sleep(400);
        return res;
      },
    };
    const worker = w.startRunner(1, undefined, { channel });
    runners.push(worker);
    const id = await enqueue(site, 'reboot', {});
    const done = await w.waitJob(id, undefined, 40_000);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    expect(rebooted()).toBe(1);
  }, 60_000);
});

describe('site lock fencing', () => {
  it('a job whose site lock lapsed while it waited for a reply, and another job ran: it touches the router no more until it has the site again', async () => {
    const site = await w.addSite('site-fence');
    const addresses = Array.from({ length: 4 }, (_, i) => `192.0.2.${i + 10}`);
    const jobA: { id?: string } = {};
    let writes = 0;
    let resumed = false;
    /** Calls worker 1 made for job A after it resumed while its run (lease epoch 1) was still the one running. */
    let unfenced = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let paused!: () => void;
    const pausedNow = new Promise<void>((r) => (paused = r));
    const ch1: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, command, attributes, timeoutMs) => {
        if (resumed && jobA.id) {
          const rows = await w.h.ds.query<{ lease_epoch: number }[]>('SELECT lease_epoch FROM jobs WHERE id = $1', [
            jobA.id,
          ]);
          if (rows[0]?.lease_epoch === 1) unfenced++;
        }
        const res = await w.channel.call(target, command, attributes, timeoutMs);
        if (command === '/ip/firewall/address-list/add' && ++writes === 2 && !resumed) {
          // The router did the second write; its reply reaches worker 1 only much later.
          paused();
          await gate;
          resumed = true;
        }
        return res;
      },
    };
    const worker1 = w.startRunner(1, undefined, { channel: ch1, siteLockTtlMs: 1500 });
    runners.push(worker1);
    jobA.id = await enqueue(site, 'apply-config', {
      changes: addresses.map((a, i) => ({ menu: 'address-list', list: `sl-${i}`, addresses: [a] })),
    });
    await pausedNow;
    // Worker 1 stalls: its site lock is not renewed and lapses (its queue lock, in the same
    // process, lives on: the job is not taken over, its lease stays with worker 1).
    const held = (worker1 as unknown as { held: Map<string, { renew: NodeJS.Timeout }> }).held;
    for (const lock of held.values()) clearInterval(lock.renew);
    await sleep(1800);

    // Meanwhile a second worker runs another job on the site, to the end. A read: job A has
    // its rollback armed, so a change would wait for A (ADR 0100); a read takes the site lock
    // and runs, which is what the fencing must survive.
    const worker2 = w.startRunner(1, undefined, { siteLockTtlMs: 1500 });
    runners.push(worker2);
    const idB = await enqueue(site, 'run-command', { command: '/ip/firewall/address-list/print' });
    const b = await w.waitJob(idB, undefined, 30_000);
    expect(b.state, JSON.stringify(b)).toBe('succeeded');
    // A change queued now waits for A's armed rollback and runs after A.
    const idC = await enqueue(site, 'run-command', {
      command: '/ip/firewall/address-list/add',
      attributes: { list: 'sl-b', address: '192.0.2.99' },
    });

    // Worker 1 resumes: its next router call for job A must not happen under the old run.
    release();
    const a = await w.waitJob(jobA.id, undefined, 40_000);
    expect(a.state, JSON.stringify(a)).toBe('succeeded');
    expect(unfenced).toBe(0);
    const c = await w.waitJob(idC, undefined, 30_000);
    expect(c.state, JSON.stringify(c)).toBe('succeeded');
    expect(Date.parse(String(c.startedAt))).toBeGreaterThanOrEqual(Date.parse(String(a.finishedAt)));
    await until(
      () =>
        w.h.ds
          .query<{ lease_epoch: number }[]>('SELECT lease_epoch FROM jobs WHERE id = $1', [jobA.id])
          .then((r) => (r[0]!.lease_epoch >= 2 ? true : undefined)),
      5000,
      'job A to have resumed in a new run',
    );
    // Every change of both jobs is on the router, once.
    const r = w.routers.get(site)!;
    for (const [i, addr] of addresses.entries()) {
      expect(r.state.items('ip/firewall/address-list').filter((x) => x.values['list'] === `sl-${i}`).length).toBe(1);
      expect(r.state.items('ip/firewall/address-list').some((x) => x.values['address'] === addr)).toBe(true);
    }
    expect(r.state.items('ip/firewall/address-list').filter((x) => x.values['list'] === 'sl-b').length).toBe(1);
  }, 90_000);
});

describe('queue entry lost with Redis', () => {
  it('a job delayed for an offline site whose queue entry is gone waits (re-added from PostgreSQL), not failed', async () => {
    const site = await w.addSite('gone-entry');
    const job: { id?: string } = {};
    let wiped = 0;
    const channel: RouterChannel = {
      tunnels: false,
      call: (target, command, attributes, timeoutMs) => w.channel.call(target, command, attributes, timeoutMs),
      connectedSince: async (id) => {
        // The first time the worker asks, the site is offline and Redis has just lost the
        // job's queue entry (restarted empty): the delay that follows finds no entry.
        if (id === site && job.id && wiped === 0) {
          wiped++;
          await w.h.redis.del(
            `${w.h.prefix}bull:${JOBS_QUEUE}:${job.id}`,
            `${w.h.prefix}bull:${JOBS_QUEUE}:${job.id}:lock`,
          );
          return undefined;
        }
        return w.channel.connectedSince(id);
      },
    };
    const worker = w.startRunner(1, undefined, { channel });
    runners.push(worker);
    job.id = await enqueue(site, 'run-command', {
      command: '/ip/firewall/address-list/add',
      attributes: { list: 'gone', address: '192.0.2.77' },
    });
    const done = await w.waitJob(job.id, undefined, 30_000);
    expect(wiped).toBe(1);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    const r = w.routers.get(site)!;
    expect(r.state.items('ip/firewall/address-list').filter((x) => x.values['list'] === 'gone').length).toBe(1);
  }, 60_000);
});

/**
 * Seed 15 episode 10: a run-command armed its rollback, wrote, and its confirm probe met a
 * router that dropped connections; while it waited, a restore on the same site reset the
 * router — the reset wipes every scheduler entry and keeps files. The job then found the
 * scheduler gone and the revert file there ("reverting") and retried every 3 s for ever.
 */
describe('commit-confirm: the rollback taken off the router by something else', () => {
  const FINAL = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'];
  type Step = { name: string; state: string; detail?: string };
  const leftovers = (site: string) => {
    const r = w.routers.get(site)!;
    return {
      schedulers: r.state
        .items('system/scheduler')
        .map((i) => i.values['name'])
        .filter((n) => n?.startsWith('bp-confirm-')),
      files: r.state
        .items('file')
        .map((i) => i.values['name'])
        .filter((n) => n?.startsWith('bp-revert-')),
    };
  };

  /**
   * A channel on which the router drops the confirm probe after the change (`list` added) until
   * `untilMs` after the change, and meanwhile "another job's reset" removes the job's scheduler
   * entry by hand (the revert file stays). Returns what it saw when it wiped.
   */
  function wipingChannel(site: string, list: string, untilMs: number) {
    const r = w.routers.get(site)!;
    const seen = { wiped: 0, files: 0, at: 0 };
    const channel: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, command, attributes, timeoutMs) => {
        const changed = r.state.find('ip/firewall/address-list', { list });
        if (changed && command === '/system/identity/print' && (seen.at === 0 || Date.now() < seen.at + untilMs)) {
          if (seen.at === 0) {
            seen.at = Date.now();
            for (const e of r.state.items('system/scheduler')) {
              if (!e.values['name']?.startsWith('bp-confirm-')) continue;
              r.state.remove('system/scheduler', e.id);
              seen.wiped++;
            }
            seen.files = leftovers(site).files.length;
          }
          throw new SiteUnreachableError('router_unreachable', 'connection reset');
        }
        return w.channel.call(target, command, attributes, timeoutMs);
      },
    };
    return { channel, seen };
  }

  it('well inside the confirm window: no revert ran, the leftover file is removed, the confirmed change succeeds', async () => {
    const site = await w.addSite('rollback-wiped');
    const { channel, seen } = wipingChannel(site, 'wiped', 0);
    runners.push(w.startRunner(1, undefined, { channel }));
    const id = await enqueue(site, 'run-command', {
      command: '/ip/firewall/address-list/add',
      attributes: { list: 'wiped', address: '192.0.2.7' },
      confirmSeconds: 60,
    });
    const job = await w.waitJob(id, FINAL, 30_000);
    expect(seen).toMatchObject({ wiped: 1, files: 1 });
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    const steps = job.steps as Step[];
    expect(steps.find((s) => s.name === 'disarm rollback' && s.state === 'done')?.detail).toMatch(
      /removed by something else .* the revert never ran; removed the leftover bp-revert-/,
    );
    expect(steps.some((s) => s.name === 'confirm reachable' && s.state === 'done')).toBe(true);
    expect(leftovers(site)).toEqual({ schedulers: [], files: [] });
    expect(w.routers.get(site)!.state.find('ip/firewall/address-list', { list: 'wiped' })).toBeDefined();
  }, 60_000);

  it('after the window could have run out: waited for one effect window, then unknown, nothing left over', async () => {
    const site = await w.addSite('rollback-stuck');
    // unreachable until the 10 s window has (nearly) run out: the scheduler could have fired
    const { channel, seen } = wipingChannel(site, 'stuck', 6500);
    runners.push(w.startRunner(1, undefined, { channel, effectWaitMs: 3000 }));
    const id = await enqueue(site, 'run-command', {
      command: '/ip/firewall/address-list/add',
      attributes: { list: 'stuck', address: '192.0.2.8' },
      confirmSeconds: 10,
    });
    const job = await w.waitJob(id, FINAL, 45_000);
    expect(seen).toMatchObject({ wiped: 1, files: 1 });
    expect(job.state, JSON.stringify(job)).toBe('unknown');
    expect(job.error).toMatch(/rollback did not complete: .* was still there \d+ s later while the router answered/);
    const names = (job.steps as Step[]).filter((s) => s.state === 'done').map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['revert pending', 'rollback lost']));
    expect(leftovers(site)).toEqual({ schedulers: [], files: [] });
  }, 60_000);
  it('the router is lost while disarming, then back: the confirmation stands (recorded once), the disarm is redone, succeeded', async () => {
    const site = await w.addSite('rollback-blip');
    const r = w.routers.get(site)!;
    // the disable of the confirm entry is lost, and so is the next reachability probe
    let drops = 0;
    const channel: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, command, attributes, timeoutMs) => {
        const changed = r.state.find('ip/firewall/address-list', { list: 'blip' });
        const disarming = command === '/system/scheduler/set' && drops === 0;
        const probing = command === '/system/identity/print' && drops === 1;
        if (changed && (disarming || probing)) {
          drops++;
          throw new SiteUnreachableError('router_unreachable', 'connection reset');
        }
        return w.channel.call(target, command, attributes, timeoutMs);
      },
    };
    runners.push(w.startRunner(1, undefined, { channel }));
    const id = await enqueue(site, 'run-command', {
      command: '/ip/firewall/address-list/add',
      attributes: { list: 'blip', address: '192.0.2.9' },
      confirmSeconds: 60,
    });
    const job = await w.waitJob(id, FINAL, 45_000);
    expect(drops).toBe(2);
    expect(job.state, JSON.stringify(job)).toBe('succeeded');
    const done = (job.steps as Step[]).filter((s) => s.state === 'done').map((s) => s.name);
    expect(done.filter((n) => n === 'confirm reachable')).toHaveLength(1);
    expect(done.filter((n) => n === 'disarm rollback')).toHaveLength(1);
    expect(leftovers(site)).toEqual({ schedulers: [], files: [] });
    expect(r.state.find('ip/firewall/address-list', { list: 'blip' })).toBeDefined();
  }, 60_000);
});
