/**
 * A worker dies while arming a change's rollback (docs/adr/0085, docs/adr/0100): the revert
 * file is on the router, the confirm scheduler is not yet (or was added but its reply never
 * came back). Another worker takes the job over after the lock TTLs:
 *
 * - re-arming is idempotent: exactly one `bp-confirm-<job>` entry, the revert file present;
 * - the job ends correctly (succeeded, disarmed, nothing left behind);
 * - meanwhile the site stays reserved: a second change queued during the gap waits, saying
 *   which job has a rollback armed, and runs only after the first ended.
 *
 * The "kill -9" is simulated: the first runner's router call never returns, and its site lock
 * renewal, its reconciler and its BullMQ worker (lock renewal) are stopped without any cleanup.
 */
import { confirmNames } from '@backplane/routeros';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimRouter } from '../../apps/routeros-sim/src';
import type { RouterChannel } from '../../apps/worker/src/jobs/channel';
import type { JobRunner } from '../../apps/worker/src/jobs/runner';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
const FINAL = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'];
type Step = { name: string; state: string; detail?: string };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const runners: JobRunner[] = [];

beforeAll(async () => {
  w = await jobsWorld();
}, 60_000);

afterAll(async () => {
  for (const r of runners) await r.close().catch(() => undefined);
  await w?.close();
});

/** The internals a process death takes away without cleanup. */
interface Killable {
  held: Map<string, { renew: NodeJS.Timeout }>;
  timer?: NodeJS.Timeout;
  worker?: { close(force?: boolean): Promise<void> };
  producer: { close(): Promise<void> };
}

async function kill(runner: JobRunner): Promise<void> {
  const k = runner as unknown as Killable;
  if (k.timer) clearInterval(k.timer);
  for (const lock of k.held.values()) clearInterval(lock.renew);
  await k.worker?.close(true);
  await k.producer.close();
}

const rollbackOn = (r: SimRouter, jobId: string) => {
  const names = confirmNames(jobId);
  return {
    schedulers: r.state.items('system/scheduler').filter((i) => i.values['name'] === names.scheduler).length,
    file: r.state.items('file').some((i) => i.values['name'] === names.file),
  };
};

async function request(site: string, body: unknown) {
  const res = await w.api('POST', `/sites/${site}/jobs`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

describe.each([
  ['before the scheduler entry is added', false],
  ['after the entry was added, its reply lost', true],
])('a worker dies while arming: %s', (label, added) => {
  it('another worker takes over, re-arms once, ends the job; the site stays reserved meanwhile', async () => {
    const site = await w.addSite(`arm-crash-${added ? 'after' : 'before'}`);
    const r = w.routers.get(site)!;
    let hung = false;
    const crashing: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      probe: (target, ms) => w.channel.probe!(target, ms),
      call: async (target, command, attributes, timeoutMs) => {
        if (command === '/system/scheduler/add' && attributes?.['name']?.startsWith('bp-confirm-')) {
          if (added) await w.channel.call(target, command, attributes, timeoutMs);
          hung = true;
          return new Promise<never>(() => undefined); // the process is gone
        }
        return w.channel.call(target, command, attributes, timeoutMs);
      },
    };
    const first = w.startRunner(1, undefined, { channel: crashing, siteLockTtlMs: 3000 });
    runners.push(first);
    const a = await request(site, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['1.1.1.1'] }], confirmSeconds: 60 },
    });
    await expect.poll(() => hung, { timeout: 20_000, interval: 50 }).toBe(true);
    await kill(first);
    // The router as the dead worker left it: the revert file, and the entry only if it was added.
    expect(rollbackOn(r, a)).toEqual({ schedulers: added ? 1 : 0, file: true });
    const steps = (await w.job(a)).steps as Step[];
    expect(steps.filter((s) => s.name === 'arm rollback').map((s) => s.state)).toEqual(['started']);

    // A second change queued during the gap.
    const b = await request(site, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }], confirmSeconds: 60 },
    });

    // The second worker: after re-arming A, what is on the router.
    const afterRearm: { schedulers: number; file: boolean }[] = [];
    const channel: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      probe: (target, ms) => w.channel.probe!(target, ms),
      call: async (target, command, attributes, timeoutMs) => {
        const res = await w.channel.call(target, command, attributes, timeoutMs);
        if (command === '/system/scheduler/add' && attributes?.['name'] === confirmNames(a).scheduler)
          afterRearm.push(rollbackOn(r, a));
        return res;
      },
    };
    // Its BullMQ stall check runs every 8 s (not 2 s): A is taken over only after the dead
    // runner's site lock (3 s) has expired and B has been tried against A's armed rollback at
    // least once. Otherwise A's takeover could win the site lock first, B would only ever see
    // "another job is running", and the reservation this test is about would go unobserved.
    const second = w.startRunner(2, undefined, { channel, siteLockTtlMs: 3000, lockDurationMs: 16_000 });
    runners.push(second);

    let sawReason = false;
    let bWroteEarly = false;
    for (;;) {
      const ja = await w.job(a);
      if (FINAL.includes(ja.state)) break;
      const jb = await w.job(b);
      if (r.state.single('ip/dns').values['servers'] === '9.9.9.9') bWroteEarly = true;
      if (jb.state === 'waiting' && String(jb.error).includes(`job ${a} has a rollback armed on this router`))
        sawReason = true;
      await sleep(100);
    }
    const ja = await w.waitJob(a, FINAL, 60_000);
    expect(ja.state, JSON.stringify(ja)).toBe('succeeded');
    expect(afterRearm).toEqual([{ schedulers: 1, file: true }]);
    expect(rollbackOn(r, a)).toEqual({ schedulers: 0, file: false });
    expect(bWroteEarly).toBe(false);
    expect(sawReason, label).toBe(true);

    const jb = await w.waitJob(b, FINAL, 60_000);
    expect(jb.state, JSON.stringify(jb)).toBe('succeeded');
    expect(r.state.single('ip/dns').values['servers']).toBe('9.9.9.9');
    expect(r.state.items('system/scheduler').filter((i) => i.values['name']?.startsWith('bp-confirm-'))).toEqual([]);
    await second.close();
    runners.splice(runners.indexOf(second), 1);
  }, 120_000);
});
