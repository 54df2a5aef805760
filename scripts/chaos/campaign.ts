/**
 * A campaign: one world, N episodes (plan → run → check), each failing episode printed with
 * its fault timeline and the command that replays it; optionally shrunk (faults dropped one
 * by one while it still fails).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, type Violation } from './checker';
import { runEpisode } from './episode';
import { describeFault, faultClass, planEpisode, type EpisodePlan } from './plan';
import { World } from './world';

export interface CampaignOptions {
  readonly seed: number;
  readonly episodes: number;
  readonly from: number;
  readonly routers: number;
  readonly lockTtlMs: number;
  /** A gateway process in the loop (the workers use its relay); false: workers reach routers directly. */
  readonly gateway: boolean;
  readonly shrink: boolean;
  /** Stop starting episodes after this much time spent in episodes (0: no limit; world start not counted). */
  readonly budgetMs?: number;
  /** Keep the data directory (logs) afterwards. */
  readonly keep: boolean;
  readonly log: (line: string) => void;
  /** Replace the plan's faults (a shrunk or hand-made replay). */
  readonly faults?: (plan: EpisodePlan) => EpisodePlan;
}

export interface EpisodeReport {
  readonly episode: number;
  readonly faults: string[];
  readonly timeline: string[];
  readonly violations: Violation[];
  readonly jobs: Record<string, number>;
  readonly ms: number;
  readonly shrunk?: string[];
}

export interface CampaignReport {
  readonly seed: number;
  readonly episodes: EpisodeReport[];
  readonly faultsByKind: Record<string, number>;
  readonly jobsByOutcome: Record<string, number>;
  readonly violationsByInvariant: Record<string, number>;
  readonly wallMs: number;
  readonly dir: string;
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignReport> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'bp-chaos-'));
  const world = new World({
    dir,
    routers: o.routers,
    lockTtlMs: o.lockTtlMs,
    gateway: o.gateway,
    log: (l) => o.log(`  · ${l}`),
  });
  const report: CampaignReport = {
    seed: o.seed,
    episodes: [],
    faultsByKind: {},
    jobsByOutcome: {},
    violationsByInvariant: {},
    wallMs: 0,
    dir,
  };
  // Ctrl-C or a test's SIGTERM: leave no process of the world behind.
  const onSignal = () => void world.close().finally(() => process.exit(130));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    o.log(
      `chaos: starting the world in ${dir} (PostgreSQL, Redis, api, 2 workers, ${o.gateway ? 'gateway (fake openvpn), ' : ''}${o.routers} routers, proxies)`,
    );
    await world.start();
    o.log(
      `chaos: world up in ${((Date.now() - t0) / 1000).toFixed(1)} s; seed ${o.seed}, episodes ${o.from}..${o.from + o.episodes - 1}`,
    );
    const episodesFrom = Date.now();
    for (let ep = o.from; ep < o.from + o.episodes; ep++) {
      if (o.budgetMs && Date.now() - episodesFrom > o.budgetMs) {
        o.log(`chaos: time budget spent after ${ep - o.from} episodes`);
        break;
      }
      let plan = planEpisode(o.seed, ep, o.routers, o.lockTtlMs, o.gateway);
      if (o.faults) plan = o.faults(plan);
      const started = Date.now();
      const run = await runEpisode(world, plan, (s) => o.log(`  ep ${ep}: ${s}`));
      const outcome = await check(world, run);
      const rep: EpisodeReport = {
        episode: ep,
        faults: plan.faults.map(describeFault),
        timeline: run.timeline,
        violations: outcome.violations,
        jobs: outcome.jobs,
        ms: Date.now() - started,
      };
      for (const f of plan.faults) report.faultsByKind[faultClass(f)] = (report.faultsByKind[faultClass(f)] ?? 0) + 1;
      for (const [s, n] of Object.entries(outcome.jobs)) report.jobsByOutcome[s] = (report.jobsByOutcome[s] ?? 0) + n;
      for (const x of outcome.violations) {
        report.violationsByInvariant[x.invariant] = (report.violationsByInvariant[x.invariant] ?? 0) + 1;
      }
      const jobs = Object.entries(outcome.jobs)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ');
      o.log(
        `ep ${ep}: ${outcome.violations.length ? `FAIL (${outcome.violations.length} violation(s))` : 'ok'} · ${(rep.ms / 1000).toFixed(1)} s · jobs: ${jobs || 'none'} · faults: ${rep.faults.join(' | ')}`,
      );
      if (outcome.violations.length) {
        for (const line of run.timeline) o.log(`    timeline ${line}`);
        for (const x of outcome.violations) o.log(`    VIOLATION ${x.invariant}: ${x.detail}`);
        o.log(`    replay: npm run chaos -- --seed ${o.seed} --from ${ep} --episodes 1`);
        if (o.shrink && plan.faults.length > 1) {
          const kept = await shrink(world, plan, o.log);
          (rep as { shrunk?: string[] }).shrunk = kept.faults.map(describeFault);
          o.log(`    shrunk to: ${rep.shrunk!.join(' | ') || '(no fault: fails without faults)'}`);
        }
      }
      report.episodes.push(rep);
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await world.close().catch(() => undefined);
    if (!o.keep && Object.keys(report.violationsByInvariant).length === 0) world.destroy();
    else o.log(`chaos: logs kept in ${dir}/logs`);
    (report as { wallMs: number }).wallMs = Date.now() - t0;
  }
  return report;
}

/** Drops faults one at a time while the episode still fails; returns the smallest plan found. */
async function shrink(world: World, plan: EpisodePlan, log: (l: string) => void): Promise<EpisodePlan> {
  let current = plan;
  let changed = true;
  while (changed && current.faults.length > 0) {
    changed = false;
    for (let i = 0; i < current.faults.length; i++) {
      const candidate: EpisodePlan = { ...current, faults: current.faults.filter((_, k) => k !== i) };
      const run = await runEpisode(world, candidate, () => undefined);
      const out = await check(world, run);
      log(
        `    shrink: without "${describeFault(current.faults[i]!)}": ${out.violations.length ? 'still fails' : 'passes'}`,
      );
      if (out.violations.length) {
        current = candidate;
        changed = true;
        break;
      }
    }
  }
  return current;
}
