/**
 * The invariant checker: reads the job rows from PostgreSQL and the routers' own effect logs
 * (what each simulator executed, from which connection, when) after an episode settled.
 */
import type { Effect, RouterSnapshot } from './protocol';
import type { EpisodeRun } from './episode';
import type { World } from './world';

export interface Violation {
  readonly invariant:
    | 'terminal'
    | 'after-terminal'
    | 'step-twice'
    | 'mutation-twice'
    | 'succeeded-not-visible'
    | 'overlapping-executors'
    | 'overlapping-runs'
    | 'mutation-outside-run'
    | 'idempotency';
  readonly detail: string;
}

interface JobRow {
  id: string;
  site_id: string;
  kind: string;
  state: string;
  idempotency_key: string | null;
  batch_id: string | null;
  steps: { name: string; state: string; at: string; detail?: string }[];
  result: unknown;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  payload: Record<string, unknown>;
}

export interface EpisodeOutcome {
  readonly violations: Violation[];
  readonly jobs: Record<string, number>;
  readonly jobCount: number;
}

const TERMINAL = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'];
/** Commands a job may execute at most once per site (unique per job in the load). */
const ONCE =
  /^\/(ip\/firewall\/address-list\/add|system\/reboot|system\/package\/update\/install|system\/reset-configuration)$/;
/** Clock slack between the router's, the worker's and PostgreSQL's view of "now" (one machine). */
const SLACK_MS = 250;

/**
 * When a job was provably executing: each step attempt that completed within one run — its
 * `started` record directly followed by its `done` (a run that resumes a step first records
 * `started` again, so a pair never spans a wait or a takeover). Times in ms since the epoch.
 */
function busySpans(j: JobRow): { step: string; from: number; to: number }[] {
  const out: { step: string; from: number; to: number }[] = [];
  for (let i = 1; i < j.steps.length; i++) {
    const a = j.steps[i - 1]!;
    const b = j.steps[i]!;
    if (a.name === b.name && a.state === 'started' && b.state === 'done')
      out.push({ step: a.name, from: new Date(a.at).getTime(), to: new Date(b.at).getTime() });
  }
  return out;
}

async function jobRows(world: World, since: Date): Promise<JobRow[]> {
  return world.db(async (c) => {
    const r = await c.query<JobRow>(
      `SELECT id, site_id, kind, state, idempotency_key, batch_id, steps, result, payload, created_at, started_at, finished_at
         FROM jobs WHERE created_at >= $1 ORDER BY created_at`,
      [since],
    );
    return r.rows;
  });
}

export async function check(world: World, run: EpisodeRun): Promise<EpisodeOutcome> {
  const v: Violation[] = [];
  const since = new Date(run.startedAt - 1000);
  const first = await jobRows(world, since);
  // Nothing may change once a job is terminal: read again after a pause.
  await new Promise((r) => setTimeout(r, 1200));
  const second = new Map((await jobRows(world, since)).map((j) => [j.id, j]));
  const effects = (await world.effects(run.effectsSince)).filter((e) => e.start >= run.startedAt - 1000);
  const snaps = new Map((await world.snapshots()).map((s) => [s.site, s] as [string, RouterSnapshot]));
  const byState: Record<string, number> = {};
  const name = (j: JobRow) => `${j.kind} ${j.id.slice(0, 8)} on ${world.routerOf.get(j.site_id)}`;
  const rel = (d: Date | null) => (d ? `+${d.getTime() - run.startedAt}` : '-');
  /** The site's jobs of this episode, in order, with their run windows (ms since the start). */
  const history = (siteId: string) =>
    first
      .filter((o) => o.site_id === siteId)
      .map((o) => `${o.kind} ${o.id.slice(0, 8)} ${o.state} ${rel(o.started_at)}..${rel(o.finished_at)}`)
      .join('; ');

  for (const j of first) {
    byState[j.state] = (byState[j.state] ?? 0) + 1;
    if (!TERMINAL.includes(j.state) || !j.finished_at) {
      v.push({ invariant: 'terminal', detail: `${name(j)} still ${j.state} after the episode settled` });
      continue;
    }
    const later = second.get(j.id)!;
    if (
      later.state !== j.state ||
      later.finished_at?.getTime() !== j.finished_at.getTime() ||
      later.steps.length !== j.steps.length
    ) {
      v.push({
        invariant: 'after-terminal',
        detail: `${name(j)} changed after it ended: ${j.state}/${j.steps.length} steps -> ${later.state}/${later.steps.length} steps`,
      });
    }
    for (const s of j.steps) {
      if (new Date(s.at).getTime() > j.finished_at.getTime() + SLACK_MS) {
        v.push({
          invariant: 'after-terminal',
          detail: `${name(j)} step "${s.name}" (${s.state}) at ${s.at} after finished_at ${j.finished_at.toISOString()}`,
        });
      }
    }
    const done = j.steps.filter((s) => s.state === 'done').map((s) => s.name);
    const dup = done.filter((s, i) => done.indexOf(s) !== i);
    if (dup.length) v.push({ invariant: 'step-twice', detail: `${name(j)} step(s) done twice: ${dup.join(', ')}` });
  }

  // One row per idempotency key, and the api answered every repeat with the same job.
  const keys = new Map<string, number>();
  for (const j of first)
    if (j.idempotency_key && !j.batch_id) keys.set(j.idempotency_key, (keys.get(j.idempotency_key) ?? 0) + 1);
  for (const [k, n] of keys)
    if (n > 1) v.push({ invariant: 'idempotency', detail: `${n} jobs for Idempotency-Key ${k}` });
  for (const a of run.accepted) {
    if (a.ids.size > 1)
      v.push({ invariant: 'idempotency', detail: `key ${a.key} answered with ${[...a.ids].join(', ')}` });
  }

  // Effects, per router.
  const jobsBySite = new Map<string, JobRow[]>();
  for (const j of first) jobsBySite.set(j.site_id, [...(jobsBySite.get(j.site_id) ?? []), j]);
  // A script's own commands (the restore script replaying a backup) are the script's effect, not the job's.
  const mutating = effects.filter((e) => e.mutating && e.outcome !== 'trap' && !e.nested);
  const bySite = new Map<string, Effect[]>();
  for (const e of mutating) bySite.set(e.site, [...(bySite.get(e.site) ?? []), e]);
  for (const [router, list] of bySite) {
    const site = world.siteOf.get(router)!;
    const siteJobs = jobsBySite.get(site) ?? [];
    // at most once — an address-list entry once per configuration: a restore's reset wipes it,
    // and a job interrupted before the reset and resumed after it rightly adds it again (seed 1
    // episode 112: apply-config's worker killed at its add, a restore ran, the job resumed).
    const resets = list.filter((e) => e.command === '/system/reset-configuration').map((e) => e.start);
    const seen = new Map<string, number>();
    for (const e of list) {
      if (!ONCE.test(e.command)) continue;
      const generation =
        e.command === '/ip/firewall/address-list/add'
          ? ` (after ${resets.filter((t) => t < e.start).length} reset(s))`
          : '';
      const sig =
        e.command +
        ' ' +
        JSON.stringify(
          Object.entries(e.args)
            .filter(([k]) => k !== '.id')
            .sort(),
        ) +
        generation;
      seen.set(sig, (seen.get(sig) ?? 0) + 1);
    }
    const kindOf: Record<string, string> = {
      '/system/reboot': 'reboot',
      '/system/package/update/install': 'routeros-upgrade',
      '/system/reset-configuration': 'restore',
    };
    for (const [sig, n] of seen) {
      const cmd = sig.split(' ')[0]!;
      // reset-configuration and install reboot the router themselves
      const kinds = cmd === '/system/reboot' ? ['reboot', 'restore', 'routeros-upgrade'] : [kindOf[cmd]];
      const allowed = kindOf[cmd] ? siteJobs.filter((j) => kinds.includes(j.kind)).length : 1;
      if (n > allowed) {
        v.push({
          invariant: 'mutation-twice',
          detail: `${router} executed ${sig} ${n} times (${allowed} job(s) may send it)`,
        });
      }
    }
    // overlapping executors: mutating commands from different connections at the same time
    const sorted = [...list].sort((a, b) => a.start - b.start);
    for (let i = 0; i < sorted.length; i++) {
      for (let k = i + 1; k < sorted.length; k++) {
        const a = sorted[i]!;
        const b = sorted[k]!;
        if (b.start > (a.end ?? a.start)) break;
        if (a.session !== b.session) {
          v.push({
            invariant: 'overlapping-executors',
            detail: `${router}: ${a.command} (conn ${a.session}) and ${b.command} (conn ${b.session}) at once (+${a.start - run.startedAt}ms)`,
          });
        }
      }
    }
    // every mutation inside some job's run on that site
    for (const e of list) {
      const inside = siteJobs.some(
        (j) =>
          j.started_at &&
          j.started_at.getTime() - SLACK_MS <= e.start &&
          (!j.finished_at || e.start <= j.finished_at.getTime() + SLACK_MS),
      );
      if (!inside) {
        const ended = siteJobs.filter((j) => j.finished_at && j.finished_at.getTime() < e.start).map(name);
        v.push({
          invariant: 'mutation-outside-run',
          detail: `${router} executed ${e.command} ${JSON.stringify(e.args)} at +${e.start - run.startedAt}ms (conn ${e.session}) while no job on it was running (ended before: ${ended.join('; ') || 'none'})`,
        });
      }
    }
  }

  // One executor per site at a time, judged by what the jobs provably did, not by their
  // started_at..finished_at windows (a job that waits for its router, or whose worker died,
  // legitimately lets other jobs run in the middle): each step attempt that completed within
  // one run (its `started` record directly followed by its `done`) was executing on the site
  // from the one to the other. Two such spans of different jobs overlapping, with mutating
  // commands from two connections inside the overlap, is two executors changing one router at
  // once. (A run frozen after its step's last command and resumed after another job ran — its
  // span covers the other job, but only that job changed the router then — is not.)
  for (const [site, list] of jobsBySite) {
    const router = world.routerOf.get(site)!;
    const muts = bySite.get(router) ?? [];
    const spans = list.map((j) => ({ j, busy: busySpans(j) }));
    for (let i = 0; i < spans.length; i++) {
      for (let k = i + 1; k < spans.length; k++) {
        const a = spans[i]!;
        const b = spans[k]!;
        const hit = a.busy.flatMap((x) =>
          b.busy
            .filter((y) => x.from < y.to && y.from < x.to)
            .map((y) => ({ x, y, from: Math.max(x.from, y.from), to: Math.min(x.to, y.to) })),
        );
        for (const { x, y, from, to } of hit) {
          const inside = muts.filter((e) => e.start >= from - SLACK_MS && e.start <= to + SLACK_MS);
          const sessions = new Set(inside.map((e) => e.session));
          if (sessions.size < 2) continue;
          v.push({
            invariant: 'overlapping-runs',
            detail: `${name(a.j)} step "${x.step}" +${x.from - run.startedAt}..+${x.to - run.startedAt} and ${name(b.j)} step "${y.step}" +${y.from - run.startedAt}..+${y.to - run.startedAt} executed on one site at once, the router changed from connections ${[...sessions].join(', ')} meanwhile (${inside.map((e) => e.command).join(', ')}) [site jobs: ${history(site)}]`,
          });
          break;
        }
      }
    }
  }

  // succeeded => the effect is visible on the router
  for (const a of run.accepted) {
    const rows = first.filter((j) => (a.batch ? j.batch_id !== null && a.ids.has(j.batch_id) : a.ids.has(j.id)));
    for (const j of rows) {
      if (j.state !== 'succeeded') continue;
      const router = world.routerOf.get(j.site_id)!;
      const snap = snaps.get(router)!;
      const win = (e: Effect) =>
        e.site === router &&
        e.outcome === 'done' &&
        e.start >= j.created_at.getTime() - SLACK_MS &&
        e.start <= j.finished_at!.getTime() + SLACK_MS;
      const siteJobs = jobsBySite.get(j.site_id) ?? [];
      // A restore's reset executed after this job's first step wipes its entries (the router's
      // own log says when, not the restore's started_at: a restore may start, wait, reset later).
      const resetLater =
        siteJobs.some((o) => o.kind === 'restore') &&
        effects.some(
          (e) =>
            e.site === router &&
            e.command === '/system/reset-configuration' &&
            e.outcome !== 'trap' &&
            e.start >= new Date(j.steps[0]?.at ?? j.started_at ?? 0).getTime() - SLACK_MS,
        );
      if (a.entries.length && !resetLater) {
        const missing = a.entries.filter((x) => !snap.addressList.includes(x));
        if (missing.length) {
          v.push({
            invariant: 'succeeded-not-visible',
            detail: `${name(j)} succeeded but ${router} lacks ${missing.join(', ')} [site jobs: ${history(j.site_id)}]`,
          });
        }
      }
      if (j.kind === 'reboot') {
        const sent = effects.some((e) => win(e) && e.command === '/system/reboot');
        const other = run.faultReboots.some((r) => r.router === router && r.at >= j.created_at.getTime());
        if (!sent && !other)
          v.push({
            invariant: 'succeeded-not-visible',
            detail: `${name(j)} succeeded but ${router} never rebooted [site jobs: ${history(j.site_id)}]`,
          });
      }
      if (j.kind === 'routeros-upgrade' && snap.runningVersion !== '7.16') {
        v.push({
          invariant: 'succeeded-not-visible',
          detail: `${name(j)} succeeded but ${router} runs ${snap.runningVersion}`,
        });
      }
      if (j.kind === 'restore' && !effects.some((e) => win(e) && e.command === '/system/reset-configuration')) {
        v.push({
          invariant: 'succeeded-not-visible',
          detail: `${name(j)} succeeded but ${router} never reset and restored [site jobs: ${history(j.site_id)}]`,
        });
      }
      if (j.kind === 'backup') {
        const id = (j.result as { backupId?: string } | null)?.backupId;
        const exists = id
          ? await world.db(async (c) => (await c.query('SELECT 1 FROM backups WHERE id = $1', [id])).rowCount === 1)
          : false;
        if (!exists)
          v.push({
            invariant: 'succeeded-not-visible',
            detail: `${name(j)} succeeded without a stored backup (${JSON.stringify(j.result)})`,
          });
      }
    }
  }
  return { violations: v, jobs: byState, jobCount: first.length };
}
