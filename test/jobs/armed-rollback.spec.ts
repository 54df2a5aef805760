/**
 * A job whose rollback is armed on a router keeps that site reserved (docs/adr/0100), on a
 * simulated RouterOS with real PostgreSQL and Redis:
 *
 * - job A's change is applied, but its reachability probe fails: A waits with its rollback armed
 *   (revert file + `bp-confirm-<A>` scheduler on the router). Job B (another change) for the
 *   same site is queued meanwhile. B must not write to the router until A is resolved: A's
 *   scheduler fires, the router takes A's change back and comes back, A ends `reverted` — and
 *   only then B runs. Without the reservation B ran while A was armed, said `succeeded`, and A's
 *   revert silently undid B's change.
 * - a read-only run-command is not held back by the armed job.
 */
import { confirmNames } from '@backplane/routeros';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimRouter } from '../../apps/routeros-sim/src';
import { SiteUnreachableError, type RouterChannel } from '../../apps/worker/src/jobs/channel';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
const FINAL = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'];
type Step = { name: string; state: string; at: string; detail?: string };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sites whose probe fails while only this job's confirm scheduler is on the router: site -> job. */
const probeFailsFor = new Map<string, string>();

const confirmEntries = (r: SimRouter) =>
  r.state
    .items('system/scheduler')
    .map((i) => i.values['name'] ?? '')
    .filter((n) => n.startsWith('bp-confirm-'));

beforeAll(async () => {
  w = await jobsWorld();
  // The direct channel, except that the reachability probe of the site's armed job A fails
  // (its change "cut" the router off for new connections) as long as A's entry is the only
  // armed one; any other job's probe passes.
  const channel: RouterChannel = {
    tunnels: false,
    connectedSince: (id) => w.channel.connectedSince(id),
    call: (target, command, attributes, timeoutMs) => w.channel.call(target, command, attributes, timeoutMs),
    probe: async (target, timeoutMs) => {
      const a = probeFailsFor.get(target.siteId);
      const r = w.routers.get(target.siteId);
      if (a && r) {
        const entries = confirmEntries(r);
        if (entries.length === 1 && entries[0] === confirmNames(a).scheduler)
          throw new SiteUnreachableError('router_unreachable', 'new connections time out (test: probe cut)');
      }
      await w.channel.probe!(target, timeoutMs);
    },
  };
  w.startRunner(4, undefined, { channel });
}, 60_000);

afterAll(async () => {
  await w?.close();
});

async function request(site: string, body: unknown) {
  const res = await w.api('POST', `/sites/${site}/jobs`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

describe('a job with its rollback armed keeps the site reserved', () => {
  it('job B waits while job A is armed and unreachable; A reverts; B runs after and its change stays', async () => {
    const site = await w.addSite('armed-a-b');
    const r = w.routers.get(site)!;
    const dns = () => r.state.single('ip/dns').values['servers'] ?? '';
    const original = dns();
    expect(original).not.toBe('9.9.9.9');

    // A: a change whose confirm fails (the probe is cut while A is the armed one).
    const a = await request(site, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['1.1.1.1'] }], confirmSeconds: 10 },
    });
    probeFailsFor.set(site, a);
    await expect
      .poll(
        async () => {
          const j = await w.job(a);
          return (j.steps as Step[]).some((s) => s.name === 'confirm reachable' && s.state === 'failed');
        },
        { timeout: 20_000, interval: 100 },
      )
      .toBe(true);
    expect(dns()).toBe('1.1.1.1');
    expect(confirmEntries(r)).toEqual([confirmNames(a).scheduler]);
    expect(['waiting', 'running']).toContain((await w.job(a)).state);

    // B: another change for the same site, queued while A is armed.
    const b = await request(site, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }], confirmSeconds: 30 },
    });

    // Until A is resolved, B does not touch the router, and says why it waits.
    let sawReason = false;
    const whileArmed: string[] = [];
    for (;;) {
      const ja = await w.job(a);
      const jb = await w.job(b);
      if (FINAL.includes(ja.state)) break;
      if (dns() === '9.9.9.9') whileArmed.push(`B's change on the router (B ${jb.state})`);
      if (confirmEntries(r).some((n) => n !== confirmNames(a).scheduler)) whileArmed.push('B armed');
      if (jb.state === 'waiting' && String(jb.error).includes(`job ${a} has a rollback armed on this router`))
        sawReason = true;
      await sleep(100);
    }
    const ja = await w.waitJob(a, FINAL, 60_000);
    expect(ja.state, JSON.stringify(ja)).toBe('reverted');

    const jb = await w.waitJob(b, FINAL, 60_000);
    // No silent undo: the router has B's change iff B says succeeded.
    await sleep(500);
    expect(dns() === '9.9.9.9', `B ${jb.state}, router dns ${dns()}: ${JSON.stringify(jb)}`).toBe(
      jb.state === 'succeeded',
    );
    expect(jb.state, JSON.stringify(jb)).toBe('succeeded');
    expect([...new Set(whileArmed)]).toEqual([]);
    expect(sawReason).toBe(true);
    expect(confirmEntries(r)).toEqual([]);
    const armedB = (jb.steps as Step[]).find((s) => s.name === 'arm rollback' && s.state === 'done')!;
    expect(Date.parse(armedB.at)).toBeGreaterThanOrEqual(Date.parse(String(ja.finishedAt)));
  }, 150_000);

  it('a read-only command is not held back by an armed job', async () => {
    const site = await w.addSite('armed-read');
    const a = await request(site, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['1.1.1.1'] }], confirmSeconds: 20 },
    });
    probeFailsFor.set(site, a);
    await expect
      .poll(
        async () =>
          ((await w.job(a)).steps as Step[]).some((s) => s.name === 'confirm reachable' && s.state === 'failed'),
        { timeout: 20_000, interval: 100 },
      )
      .toBe(true);
    const read = await request(site, { kind: 'run-command', payload: { command: '/ip/dns/print' } });
    const jr = await w.waitJob(read, FINAL, 15_000);
    expect(jr.state, JSON.stringify(jr)).toBe('succeeded');
    expect(FINAL).not.toContain((await w.job(a)).state);
    probeFailsFor.delete(site);
    const ja = await w.waitJob(a, FINAL, 60_000);
    expect(['succeeded', 'reverted']).toContain(ja.state);
  }, 90_000);
});
