import { z } from 'zod';
import { commandPolicy } from './command-policy';

/**
 * Rollouts (issue 18 "waves", docs/adr/0096-rollouts-in-waves.md): one bulk change run as a
 * canary wave, then growing waves; after each wave, health gates decide whether the next
 * one starts. The api stores the request; the worker's `rollouts` schedule advances it.
 */

export const ROLLOUT_STATES = [
  'pending_approval',
  'running',
  'paused',
  'halted',
  'completed',
  'aborted',
  'rejected',
] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
export const WAVE_STATES = ['pending', 'running', 'passed', 'failed', 'cancelled'] as const;
export type WaveState = (typeof WAVE_STATES)[number];

const Percent = z.string().regex(/^(100|[1-9]?[0-9])(\.[0-9]+)?%$/, 'a share like "10%"');
/** A wave's cumulative target: a number of sites, or a share of all sites ("10%"). */
const WaveTarget = z.union([z.number().int().min(1).max(1_000_000), Percent]);

/**
 * How the sites are cut into waves. A list: each entry is how many sites have been started
 * once that wave has started (cumulative: `[1, "10%", "50%", "100%"]` = a canary site, then up to
 * 10 %, 50 % and all); sites left after the last entry form one more wave. Or a canary and
 * a growth factor: `{ canary: 1, factor: 2 }` = waves of 1, 2, 4, 8... sites.
 */
export const WavesSpec = z.union([
  z.array(WaveTarget).min(1).max(100),
  z.strictObject({ canary: WaveTarget, factor: z.number().min(1.1).max(100) }),
]);
export type WavesSpec = z.infer<typeof WavesSpec>;

/** A failure threshold: a number of sites, or a share of the wave's sites ("5%"). */
const Threshold = z.union([z.number().int().min(0).max(1_000_000), Percent]);

/** A read-only RouterOS command every site of a wave must answer without an error. */
export const CheckCommand = z
  .strictObject({
    command: z
      .string()
      .min(2)
      .max(200)
      .regex(/^\/[a-z0-9/-]+$/, 'a command path like /system/resource/print'),
    attributes: z.record(z.string().regex(/^[a-z.][a-z0-9.-]*$/), z.string().max(200)).default({}),
  })
  .refine((c) => commandPolicy('operator', '', c.command, c.attributes).allowed, {
    message: 'the check command must be read-only (a print, getall, monitor or ping an operator may send)',
    path: ['command'],
  });

/** Health gates checked after each wave, before the next starts. */
export const RolloutGates = z.strictObject({
  /** Sites of a wave that may fail (job not succeeded, or a gate below) before the rollout halts. Default 0. */
  maxFailures: Threshold.default(0),
  /** The site must be online (as the control plane sees it) after its job. Default true. */
  siteOnline: z.boolean().default(true),
  /** The site's management tunnel must be up after its job. Default true. */
  tunnelUp: z.boolean().default(true),
  /** A read-only command that must succeed on every site of the wave. */
  check: CheckCommand.optional(),
  /** Seconds to wait after a wave's last job ended before its gates are checked. Default 0. */
  bakeSeconds: z.number().int().min(0).max(86_400).default(0),
  /** A wave whose jobs have not all ended after this long halts the rollout. Default 3600. */
  waveTimeoutSeconds: z
    .number()
    .int()
    .min(30)
    .max(7 * 86_400)
    .default(3600),
});
export type RolloutGates = z.infer<typeof RolloutGates>;

/** The fields a rollout request adds to a bulk job request (`RolloutRequest` in names.ts). */
export const ROLLOUT_OPTIONS = {
  waves: WavesSpec.default([1, '10%', '50%', '100%']),
  gates: RolloutGates.prefault({}),
};

function sitesOf(target: number | string, total: number): number {
  if (typeof target === 'number') return target;
  return Math.ceil((Number.parseFloat(target) / 100) * total);
}

/**
 * The waves for `total` sites as [start, end) offsets into the rollout's site list: each
 * wave has at least one site, targets that add no site are skipped, the last wave ends at
 * `total`.
 */
export function planWaves(spec: WavesSpec, total: number): { start: number; end: number }[] {
  const ends: number[] = [];
  if (Array.isArray(spec)) {
    for (const t of spec) ends.push(Math.min(total, sitesOf(t, total)));
  } else {
    let size = Math.max(1, sitesOf(spec.canary, total));
    let end = 0;
    while (end < total) {
      end = Math.min(total, end + size);
      ends.push(end);
      size = Math.max(size + 1, Math.round(size * spec.factor));
    }
  }
  ends.push(total);
  const waves: { start: number; end: number }[] = [];
  let start = 0;
  for (const e of ends) {
    if (e <= start) continue;
    waves.push({ start, end: e });
    start = e;
  }
  return waves;
}

/** How many of `n` sites may fail a wave's gates. */
export function allowedFailures(threshold: number | string, n: number): number {
  if (typeof threshold === 'number') return threshold;
  return Math.floor((Number.parseFloat(threshold) / 100) * n);
}

/** One site that did not pass a wave's gates, and why. */
export interface GateFailure {
  readonly siteId: string;
  readonly reason: string;
}

/** What a wave's gates found (stored with the wave, shown by the api). */
export interface GateResult {
  readonly passed: boolean;
  readonly sites: number;
  readonly failures: number;
  readonly allowed: number;
  /** Counts by cause (`job failed`, `offline`, `tunnel down`, `check failed`...). */
  readonly causes: Readonly<Record<string, number>>;
  /** The first failures (at most 50). */
  readonly examples: readonly GateFailure[];
  readonly at: string;
}

/** The gate verdict from per-site failures. */
export function gateResult(sites: number, failures: readonly GateFailure[], threshold: number | string): GateResult {
  const allowed = allowedFailures(threshold, sites);
  const causes: Record<string, number> = {};
  for (const f of failures) {
    const cause = f.reason.split(':')[0]!;
    causes[cause] = (causes[cause] ?? 0) + 1;
  }
  return {
    passed: failures.length <= allowed,
    sites,
    failures: failures.length,
    allowed,
    causes,
    examples: failures.slice(0, 50),
    at: new Date().toISOString(),
  };
}

/** The one-line reason a rollout halted at wave `index` (1-based in the text). */
export function haltReason(index: number, g: GateResult): string {
  const causes = Object.entries(g.causes)
    .map(([c, n]) => `${n} ${c}`)
    .join(', ');
  return `wave ${index + 1}: ${g.failures} of ${g.sites} sites failed the health gates (${causes}); at most ${g.allowed} allowed`;
}

/** A wave as stored (the lib's view of `RolloutWaveRow`). */
export interface WaveLike {
  readonly wave: number;
  readonly startOffset: number;
  readonly endOffset: number;
  readonly batchId: string;
  readonly state: string;
  readonly attempt: number;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly gate: unknown;
}

const OPEN = new Set(['queued', 'waiting', 'running']);

/** A rollout's progress from its waves and the per-wave counts of each site's latest job. */
export function rolloutProgress(
  r: { id: string; state: string; reason: string | null; total: number },
  waves: readonly WaveLike[],
  counts: readonly { wave: number; state: string; n: number }[],
) {
  const byWave = new Map<number, Record<string, number>>();
  let succeeded = 0;
  let failed = 0;
  let open = 0;
  for (const c of counts) {
    const m = byWave.get(c.wave) ?? {};
    m[c.state] = (m[c.state] ?? 0) + c.n;
    byWave.set(c.wave, m);
    if (c.state === 'succeeded') succeeded += c.n;
    else if (OPEN.has(c.state)) open += c.n;
    else failed += c.n;
  }
  const started = waves.filter((w) => w.state !== 'pending' && w.state !== 'cancelled');
  const current = started.length ? started[started.length - 1]!.wave : -1;
  return {
    summary: {
      rolloutId: r.id,
      state: r.state,
      wave: current,
      waves: waves.length,
      total: r.total,
      succeeded,
      failed,
      open,
      reason: r.reason,
    },
    waves: waves.map((w) => ({
      index: w.wave,
      sites: w.endOffset - w.startOffset,
      state: w.state,
      attempt: w.attempt,
      batchId: w.state === 'pending' && w.attempt === 0 ? null : w.batchId,
      jobs: byWave.get(w.wave) ?? {},
      gate: (w.gate ?? null) as GateResult | null,
      startedAt: w.startedAt ? w.startedAt.toISOString() : null,
      finishedAt: w.finishedAt ? w.finishedAt.toISOString() : null,
    })),
  };
}

/**
 * Whether a wave's job for this change waits for its site's maintenance window (the api's
 * `ChangeGate` holds the same kinds: everything that changes a router; a `run-command` that
 * only prints does not).
 */
export function holdsForWindows(kind: string, payload: unknown): boolean {
  if (!['apply-config', 'run-command', 'restore', 'reboot', 'recreate-tunnel', 'routeros-upgrade'].includes(kind)) {
    return false;
  }
  return !(kind === 'run-command' && /\/print$/.test((payload as { command?: string } | null)?.command ?? ''));
}
