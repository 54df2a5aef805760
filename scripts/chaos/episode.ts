/**
 * Runs one episode's plan against the world: posts the job load through the REST API (with
 * Idempotency-Keys, retried like a client would), injects the faults at their moments,
 * heals everything, waits for every job to end, and hands what happened to the checker.
 */
import { randomUUID } from 'node:crypto';
import type { EpisodePlan, FaultPlan, JobPlan } from './plan';
import type { World } from './world';

export interface Accepted {
  readonly plan: JobPlan;
  readonly key: string;
  /** Job ids the api answered with for this key (more than one = idempotency broken). */
  readonly ids: Set<string>;
  readonly batch?: boolean;
  /** address-list entries (list=address) the job must leave on the router when it succeeds. */
  readonly entries: string[];
  readonly apiKind: string;
  readonly status: number[];
}

export interface EpisodeRun {
  readonly plan: EpisodePlan;
  readonly startedAt: number;
  readonly accepted: Accepted[];
  /** Timeline lines (ms since start). */
  readonly timeline: string[];
  /** Router reboots the harness itself caused (router, at). */
  readonly faultReboots: { router: string; at: number }[];
  readonly effectsSince: number;
  /** ms spent waiting for jobs to end. */
  settleMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function request(
  plan: JobPlan,
  ep: number,
  world: World,
): { path: string; body: unknown; entries: string[]; apiKind: string } {
  const list = `e${ep}-${plan.n}`;
  const site = world.siteOf.get(plan.router)!;
  const b = ep % 250;
  switch (plan.kind) {
    case 'apply-config': {
      const addresses = Array.from({ length: 3 + (plan.n % 5) }, (_, i) => `10.${b}.${plan.n}.${i + 1}`);
      return {
        path: `/sites/${site}/jobs`,
        body: {
          kind: 'apply-config',
          payload: {
            changes: [
              { menu: 'address-list', list, addresses },
              { menu: 'dns', servers: [`192.0.2.${(ep % 200) + 1}`] },
            ],
          },
        },
        entries: addresses.map((a) => `${list}=${a}`),
        apiKind: 'apply-config',
      };
    }
    case 'run-command': {
      const address = `172.16.${b}.${plan.n + 1}`;
      return {
        path: `/sites/${site}/jobs`,
        body: {
          kind: 'run-command',
          payload: { command: '/ip/firewall/address-list/add', attributes: { list, address } },
        },
        entries: [`${list}=${address}`],
        apiKind: 'run-command',
      };
    }
    case 'backup':
      return { path: `/sites/${site}/jobs`, body: { kind: 'backup', payload: {} }, entries: [], apiKind: 'backup' };
    case 'reboot':
      return { path: `/sites/${site}/jobs`, body: { kind: 'reboot', payload: {} }, entries: [], apiKind: 'reboot' };
    case 'upgrade':
      return {
        path: `/sites/${site}/jobs`,
        body: { kind: 'routeros-upgrade', payload: { channel: 'stable' } },
        entries: [],
        apiKind: 'routeros-upgrade',
      };
    case 'restore':
      // filled in at post time (needs a backup id)
      return { path: `/sites/${site}/jobs`, body: undefined, entries: [], apiKind: 'restore' };
    case 'bulk': {
      const addresses = [`10.${b}.${100 + plan.n}.1`];
      return {
        path: '/jobs/bulk',
        body: {
          kind: 'apply-config',
          payload: { changes: [{ menu: 'address-list', list, addresses }] },
          tags: ['chaos'],
        },
        entries: addresses.map((a) => `${list}=${a}`),
        apiKind: 'apply-config',
      };
    }
  }
}

async function backupOf(world: World, router: string): Promise<string | undefined> {
  try {
    const res = await world.call('GET', world.t(`/sites/${world.siteOf.get(router)!}/backups`));
    const items = (res.body['items'] as { id: string }[] | undefined) ?? [];
    return items[0]?.id;
  } catch {
    return undefined;
  }
}

/** Posts one job like a careful client: same key on every retry until the api answers. */
async function post(world: World, plan: JobPlan, ep: number, out: Accepted[], say: (s: string) => void): Promise<void> {
  const req = request(plan, ep, world);
  let body = req.body;
  if (plan.kind === 'restore') {
    const backupId = await backupOf(world, plan.router);
    body = backupId ? { kind: 'restore', payload: { backupId } } : { kind: 'backup', payload: {} };
  }
  const key = `chaos-${ep}-${plan.n}-${randomUUID().slice(0, 8)}`;
  const acc: Accepted = {
    plan,
    key,
    ids: new Set(),
    entries: req.entries,
    apiKind: (body as { kind: string }).kind === 'backup' && plan.kind === 'restore' ? 'backup' : req.apiKind,
    status: [],
    ...(plan.kind === 'bulk' ? { batch: true } : {}),
  };
  out.push(acc);
  const once = async (): Promise<boolean> => {
    const until = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await world.call('POST', world.t(req.path), body, undefined, { 'idempotency-key': key });
        acc.status.push(res.status);
        if (res.status === 200 || res.status === 201) {
          if (plan.kind === 'bulk') acc.ids.add((res.body['batch'] as { id: string }).id);
          else acc.ids.add(res.body['id'] as string);
          return true;
        }
        if (res.status < 500 && res.status !== 429) {
          say(`job ${plan.n} (${plan.kind}) refused: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
          return false;
        }
      } catch {
        // connection refused / reset / timeout: the api is down or paused; retry with the same key
      }
      if (Date.now() > until) return false;
      await sleep(250);
    }
  };
  if (!(await once())) return;
  if (plan.repeatAfterMs !== undefined) {
    await sleep(plan.repeatAfterMs);
    await once();
  }
}

export async function inject(
  world: World,
  f: FaultPlan,
  t0: number,
  timeline: string[],
  reboots: { router: string; at: number }[],
): Promise<void> {
  const note = (s: string) => timeline.push(`+${Date.now() - t0}ms ${s}`);
  switch (f.kind) {
    case 'kill':
      note(`kill -9 ${f.proc}`);
      world.signal(f.proc, 'SIGKILL');
      await sleep(f.forMs);
      note(`restart ${f.proc}`);
      await world.restart(f.proc);
      return;
    case 'term': {
      // PostgreSQL: SIGINT, the "fast" shutdown (clients disconnected, admin shutdown); its
      // SIGTERM waits for every pooled connection to go away, which never happens.
      const sig = f.proc === 'postgres' ? 'SIGINT' : 'SIGTERM';
      note(`${sig} ${f.proc}`);
      world.signal(f.proc, sig);
      const exited = await world.waitExit(f.proc, 10_000);
      note(exited ? `${f.proc} exited` : `${f.proc} still running 10 s after ${sig}: kill -9`);
      if (!exited) world.signal(f.proc, 'SIGKILL');
      await sleep(f.forMs);
      note(`restart ${f.proc}`);
      await world.restart(f.proc);
      return;
    }
    case 'pause':
      note(`SIGSTOP ${f.proc}`);
      world.signal(f.proc, 'SIGSTOP');
      await sleep(f.forMs);
      world.signal(f.proc, 'SIGCONT');
      note(`SIGCONT ${f.proc}`);
      return;
    case 'link-reset':
      note(`reset ${f.link}`);
      world.links.get(f.link)!.reset();
      return;
    case 'link-latency': {
      const l = world.links.get(f.link)!;
      note(`latency ${f.ms}ms on ${f.link}`);
      l.latencyMs = f.ms;
      await sleep(f.forMs);
      l.latencyMs = 0;
      note(`latency off on ${f.link}`);
      return;
    }
    case 'link-blackhole': {
      const l = world.links.get(f.link)!;
      note(`blackhole ${f.link}`);
      l.mode = 'blackhole';
      await sleep(f.forMs);
      l.heal();
      note(`blackhole over on ${f.link}`);
      return;
    }
    case 'router-reboot':
      note(`reboot ${f.router}`);
      reboots.push({ router: f.router, at: Date.now() });
      await world.routerFault(f.router, { kind: 'reboot' });
      return;
    case 'router-drop':
    case 'router-silent':
      note(`${f.router} ${f.kind === 'router-drop' ? 'drops connections' : 'silent'}`);
      await world.routerFault(f.router, { kind: f.kind === 'router-drop' ? 'drop' : 'silent' });
      await sleep(f.forMs);
      await world.routerFault(f.router, { kind: 'heal' });
      note(`${f.router} healed`);
      return;
    case 'trigger':
      note(`armed: ${f.router} ${f.match} -> ${f.action}`);
      await world.arm(f.router, f.match, async (_site, command) => {
        note(`TRIGGER ${f.router} executed ${command}: ${f.action}`);
        if (f.action === 'kill-worker' || f.action === 'kill-postgres') {
          const proc = f.action === 'kill-worker' ? f.worker : 'postgres';
          world.signal(proc, 'SIGKILL');
          setTimeout(() => {
            note(`restart ${proc}`);
            void world.restart(proc).catch((err: unknown) => note(`restart ${proc} failed: ${String(err)}`));
          }, f.forMs).unref();
        } else if (f.action === 'reset-link') world.links.get(world.routerLink(f.router))!.reset();
        else {
          world.signal(f.worker, 'SIGSTOP');
          setTimeout(() => {
            world.signal(f.worker, 'SIGCONT');
            note(`SIGCONT ${f.worker}`);
          }, f.forMs).unref();
        }
        await sleep(20);
      });
      return;
  }
}

export async function runEpisode(world: World, plan: EpisodePlan, say: (s: string) => void): Promise<EpisodeRun> {
  const effectsSince = (await world.effects(0)).reduce((m, e) => Math.max(m, e.seq), 0);
  const t0 = Date.now();
  const run: EpisodeRun = {
    plan,
    startedAt: t0,
    accepted: [],
    timeline: [],
    faultReboots: [],
    effectsSince,
    settleMs: 0,
  };
  const work: Promise<void>[] = [];
  for (const j of plan.jobs) {
    work.push(
      (async () => {
        await sleep(j.atMs);
        await post(world, j, plan.episode, run.accepted, say);
      })(),
    );
  }
  for (const f of plan.faults) {
    work.push(
      (async () => {
        await sleep(f.atMs);
        await inject(world, f, t0, run.timeline, run.faultReboots);
      })(),
    );
  }
  await Promise.all(work);
  // Let triggers that did not fire stay armed a little longer, then heal everything.
  await sleep(1500);
  run.timeline.push(`+${Date.now() - t0}ms heal`);
  await world.heal();
  const settle = Date.now();
  // Up to 150 s: a router that went silent mid-command holds its site until the worker's
  // command timeout (60 s), and the jobs queued behind it, their backoff and a takeover
  // follow; a job still open after that is a `terminal` violation (and must not leak into the
  // next episode's effects).
  await waitTerminal(world, t0, 150_000);
  run.settleMs = Date.now() - settle;
  return run;
}

/** Until every job created since `t0` is terminal (or `ms` passed). */
async function waitTerminal(world: World, t0: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    let open = 1;
    try {
      open = await world.db(async (c) => {
        const r = await c.query<{ n: string }>(
          `SELECT count(*) AS n FROM jobs WHERE created_at >= $1 AND state IN ('queued','waiting','running')`,
          [new Date(t0 - 1000)],
        );
        return Number(r.rows[0]!.n);
      });
    } catch {
      // PostgreSQL restarting
    }
    if (open === 0 || Date.now() > until) return;
    await sleep(300);
  }
}
