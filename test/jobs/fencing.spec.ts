/**
 * Jobs that never lie (issue 15 findings 1-3): a worker paused past its site lock while
 * another takes the job over can no longer write anything (job lease fencing); reboot and
 * restore are done only when their effect shows on the router, and a router refusal fails
 * the job with the router's message; PostgreSQL connections killed mid-job fail nothing.
 */
import { Client } from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@backplane/testing';
import { SiteUnreachableError, type RouterChannel } from '../../apps/worker/src/jobs/channel';
import type { JobRunner } from '../../apps/worker/src/jobs/runner';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
const runners: JobRunner[] = [];

beforeAll(async () => {
  w = await jobsWorld();
}, 60_000);

/** Each test's workers stop with it (a failed test must not leave a worker taking the next test's jobs). */
afterEach(async () => {
  for (const r of runners.splice(0)) await r.close();
  w.runner = undefined;
});

afterAll(async () => {
  await w?.close();
});

type Step = { name: string; state: string; at: string; detail?: string };
type Row = { state: string; steps: Step[]; finished_at: Date | null; error: string | null; lease_epoch: number };

async function dbJob(id: string): Promise<Row> {
  const rows = await w.h.ds.query<Row[]>(
    `SELECT state, steps, finished_at, error, lease_epoch FROM jobs WHERE id = $1`,
    [id],
  );
  return rows[0]!;
}

async function enqueue(site: string, kind: string, payload: unknown): Promise<string> {
  const res = await w.api('POST', `/sites/${site}/jobs`, { kind, payload });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

/** Address-list entries added on the router, per address (each must be added exactly once). */
function countAdds(site: string): Map<string, number> {
  const adds = new Map<string, number>();
  const seen = new Set<number>();
  w.routers.get(site)!.state.onChange((e) => {
    if (e.store !== 'ip/firewall/address-list' || !e.item || seen.has(e.id)) return;
    seen.add(e.id);
    const a = e.item.values['address'] ?? '';
    adds.set(a, (adds.get(a) ?? 0) + 1);
  });
  return adds;
}

/** Stops every timer of an in-process runner, as SIGSTOP would: no queue lock, site lock or reconcile renewals. */
async function freeze(runner: JobRunner): Promise<void> {
  const inner = runner as unknown as {
    worker: { close(force: boolean): Promise<void> };
    held: Map<string, { renew: NodeJS.Timeout }>;
    timer?: NodeJS.Timeout;
  };
  if (inner.timer) clearInterval(inner.timer);
  for (const lock of inner.held.values()) clearInterval(lock.renew);
  await inner.worker.close(true);
}

const running = (runner: JobRunner) => (runner as unknown as { active: Set<string> }).active.size;

describe('fencing: a worker paused past its site lock', () => {
  it('a second worker takes over and finishes; the first, resumed, writes nothing and the job stays succeeded', async () => {
    const site = await w.addSite('split-brain');
    const adds = countAdds(site);
    const addresses = Array.from({ length: 6 }, (_, i) => `198.51.100.${i + 1}`);
    // Worker 1 pauses right after its second write, before its next router call returns.
    let writes = 0;
    let writesAfterResume = 0;
    let resumed = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let paused!: () => void;
    const pausedNow = new Promise<void>((r) => (paused = r));
    const ch1: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, command, attributes, timeoutMs) => {
        if (!command.endsWith('/print') && !command.endsWith('/export')) {
          if (resumed) writesAfterResume++;
          else writes++;
        }
        if (writes === 2 && !resumed && command === '/ip/firewall/address-list/print') {
          paused();
          await gate;
          resumed = true;
        }
        return w.channel.call(target, command, attributes, timeoutMs);
      },
    };
    const worker1 = w.startRunner(1, undefined, { channel: ch1, siteLockTtlMs: 1500 });
    runners.push(worker1);
    const id = await enqueue(site, 'apply-config', {
      changes: addresses.map((a, i) => ({ menu: 'address-list', list: `fence-${i}`, addresses: [a] })),
    });
    await pausedNow;
    await freeze(worker1);

    const worker2 = w.startRunner(1, undefined, { siteLockTtlMs: 1500 });
    runners.push(worker2);
    const done = await w.waitJob(id, ['succeeded', 'failed', 'cancelled', 'expired', 'unknown'], 30_000);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');

    release();
    await until(() => Promise.resolve(running(worker1) === 0 ? true : undefined), 15_000, 'worker 1 to stop');
    await new Promise((r) => setTimeout(r, 500));

    const row = await dbJob(id);
    expect(row.state).toBe('succeeded');
    expect(row.lease_epoch).toBe(2);
    // Nothing recorded after the job ended.
    for (const s of row.steps) expect(new Date(s.at).getTime(), s.name).toBeLessThanOrEqual(row.finished_at!.getTime());
    expect(row.steps.some((s) => s.name === 'roll back')).toBe(false);
    // Worker 1 touched the router no more; every change is on the router, each added once.
    expect(writesAfterResume).toBe(0);
    const r = w.routers.get(site)!;
    for (const [i, a] of addresses.entries()) {
      expect(r.state.items('ip/firewall/address-list').filter((x) => x.values['list'] === `fence-${i}`).length).toBe(1);
      expect(adds.get(a), a).toBe(1);
    }
  }, 60_000);
});

describe('transient database faults', () => {
  it('pg_terminate_backend on every connection during a 20-change apply-config: succeeded, all 20 applied once', async () => {
    const site = await w.addSite('pg-resets');
    const adds = countAdds(site);
    const worker = w.startRunner(2);
    runners.push(worker);
    const killer = new Client({ connectionString: w.h.tdb.url });
    await killer.connect();
    let kills = 0;
    const terminate = async () => {
      const res = await killer.query<{ n: string }>(
        `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
      kills += Number(res.rows[0]?.n ?? 0);
    };
    let n = 0;
    const pending: Promise<void>[] = [];
    w.routers.get(site)!.state.onChange((e) => {
      // Right as the router applies changes 4, 9 and 15: the step writes that follow hit dead connections.
      if (e.store === 'ip/firewall/address-list' && e.item && [4, 9, 15].includes(++n)) pending.push(terminate());
    });
    const addresses = Array.from({ length: 20 }, (_, i) => `203.0.113.${i + 1}`);
    const id = await enqueue(site, 'apply-config', {
      changes: addresses.map((a, i) => ({ menu: 'address-list', list: `pg-${i}`, addresses: [a] })),
    });
    const done = await w.waitJob(id, ['succeeded', 'failed', 'cancelled', 'expired', 'unknown'], 60_000);
    await Promise.all(pending);
    await killer.end();
    expect(kills).toBeGreaterThan(0);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    for (const a of addresses) expect(adds.get(a), a).toBe(1);
    const row = await dbJob(id);
    const doneSteps = row.steps.filter((s) => s.state === 'done').map((s) => s.name);
    expect(new Set(doneSteps).size).toBe(doneSteps.length);
    expect(doneSteps.filter((s) => s.startsWith('apply ')).length).toBe(20);
  }, 90_000);
});

describe('effects are verified, not assumed', () => {
  /** A channel that resets the router's connections right before `command` reaches it. */
  function resetBefore(site: string, command: string): { channel: RouterChannel; resets: () => number } {
    let resets = 0;
    return {
      resets: () => resets,
      channel: {
        tunnels: false,
        connectedSince: (id) => w.channel.connectedSince(id),
        call: async (target, cmd, attributes, timeoutMs) => {
          const r = w.routers.get(site)!;
          if (cmd !== command || target.siteId !== site) return w.channel.call(target, cmd, attributes, timeoutMs);
          resets++;
          r.faults.dropConnections = true;
          try {
            return await w.channel.call(target, cmd, attributes, timeoutMs);
          } finally {
            r.faults.dropConnections = false;
          }
        },
      },
    };
  }

  /** The router's own count of reboots (its log is emptied by a reboot, so count as it happens). */
  function countLog(site: string, re: RegExp): () => number {
    let n = 0;
    w.routers.get(site)!.state.onChange((e) => {
      if (e.store === 'log' && e.item && re.test(e.item.values['message'] ?? '')) n++;
    });
    return () => n;
  }

  it('connection reset just before the reboot: the router did not reboot, the job does not succeed', async () => {
    const site = await w.addSite('reboot-reset');
    const rebooted = countLog(site, /system rebooted by/);
    const { channel, resets } = resetBefore(site, '/system/reboot');
    const worker = w.startRunner(1, undefined, { channel, effectWaitMs: 3000 });
    runners.push(worker);
    const id = await enqueue(site, 'reboot', {});
    const done = await w.waitJob(id, undefined, 40_000);
    expect(resets()).toBeGreaterThan(0);
    expect(rebooted()).toBe(0);
    expect(done.state).not.toBe('succeeded');
    expect(done.state).toBe('failed');
    expect(String(done.error)).toContain('did not reboot');
  }, 60_000);

  it('a reboot that went through is verified by the new boot time', async () => {
    const site = await w.addSite('reboot-ok');
    const rebooted = countLog(site, /system rebooted by/);
    const worker = w.startRunner(1);
    runners.push(worker);
    const id = await enqueue(site, 'reboot', {});
    const done = await w.waitJob(id, undefined, 40_000);
    expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
    expect(rebooted()).toBe(1);
  }, 60_000);

  it('a router that refuses the reboot (trap): failed with the router message', async () => {
    const site = await w.addSite('reboot-refused');
    const r = w.routers.get(site)!;
    // The API user may read and write, not reboot.
    const write = r.state.find('user/group', { name: 'write' })!.values['policy'] ?? '';
    const policy = write
      .split(',')
      .filter((p) => p !== 'reboot')
      .join(',');
    r.state.insert('user/group', { name: 'no-reboot', policy, skin: 'default' });
    r.state.update('user', r.state.find('user', { name: 'bp-api' })!, { group: 'no-reboot' });
    const worker = w.startRunner(1);
    runners.push(worker);
    const id = await enqueue(site, 'reboot', {});
    const done = await w.waitJob(id, undefined, 30_000);
    expect(done.state).toBe('failed');
    expect(String(done.error)).toMatch(/^router refused: .*permission/i);
  }, 60_000);

  it('connection reset just before the reset-and-restore: not reset, the job does not succeed', async () => {
    const site = await w.addSite('restore-reset');
    const r = w.routers.get(site)!;
    const reset = countLog(site, /configuration reset by|system rebooted by/);
    const worker1 = w.startRunner(1);
    runners.push(worker1);
    const b = await w.waitJob(await enqueue(site, 'backup', {}));
    expect(b.state).toBe('succeeded');
    const backupId = (b.result as { backupId: string }).backupId;
    await worker1.close();
    runners.splice(0);
    // Drift after the backup: the restore must take it back (or not succeed).
    r.state.update('system/identity', r.state.single('system/identity'), { name: 'drifted' });
    const { channel, resets } = resetBefore(site, '/system/reset-configuration');
    const worker = w.startRunner(1, undefined, { channel, effectWaitMs: 3000 });
    runners.push(worker);
    const id = await enqueue(site, 'restore', { backupId });
    const done = await w.waitJob(id, undefined, 60_000);
    expect(resets()).toBeGreaterThan(0);
    expect(reset()).toBe(0);
    expect(r.state.single('system/identity').values['name']).toBe('drifted');
    expect(done.state).not.toBe('succeeded');
    expect(String(done.error)).toContain('was not reset');
  }, 90_000);

  it('a run-command whose reply is lost after the router executed it: unknown, executed once, never repeated', async () => {
    const site = await w.addSite('command-lost');
    const r = w.routers.get(site)!;
    let lost = 0;
    const channel: RouterChannel = {
      tunnels: false,
      connectedSince: (id) => w.channel.connectedSince(id),
      call: async (target, cmd, attributes, timeoutMs) => {
        const res = await w.channel.call(target, cmd, attributes, timeoutMs);
        if (cmd === '/ip/address/add' && lost++ === 0) throw new SiteUnreachableError('router_unreachable', 'reset');
        return res;
      },
    };
    runners.push(w.startRunner(1, undefined, { channel }));
    const id = await enqueue(site, 'run-command', {
      command: '/ip/address/add',
      attributes: { address: '192.0.2.77/24', interface: 'ether3' },
    });
    const done = await w.waitJob(id, undefined, 30_000);
    expect(done.state).toBe('unknown');
    expect(String(done.error)).toMatch(/interrupted after it may have been sent/);
    expect(r.state.items('ip/address').filter((a) => a.values['address'] === '192.0.2.77/24')).toHaveLength(1);
    expect(lost).toBe(1);
  }, 60_000);
});
