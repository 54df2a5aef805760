/**
 * An episode's plan, drawn from a seeded PRNG: the job load (what, on which router, when)
 * and 1-3 faults (what, when, for how long). The same (seed, episode) gives the same plan;
 * shrinking drops faults from a plan and runs it again.
 */
import { routerLink, type ProcName } from './world';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type JobKindPlan = 'apply-config' | 'run-command' | 'backup' | 'restore' | 'reboot' | 'upgrade' | 'bulk';

export interface JobPlan {
  readonly n: number;
  readonly kind: JobKindPlan;
  readonly router: string;
  readonly atMs: number;
  /** Post the same request (same Idempotency-Key) again this much later. */
  readonly repeatAfterMs?: number;
}

export type FaultPlan =
  | { kind: 'kill'; proc: ProcName; atMs: number; forMs: number }
  | { kind: 'term'; proc: ProcName; atMs: number; forMs: number }
  | { kind: 'pause'; proc: ProcName; atMs: number; forMs: number }
  | { kind: 'link-reset'; link: string; atMs: number }
  | { kind: 'link-latency'; link: string; atMs: number; forMs: number; ms: number }
  | { kind: 'link-blackhole'; link: string; atMs: number; forMs: number }
  | { kind: 'router-reboot'; router: string; atMs: number }
  | { kind: 'router-drop'; router: string; atMs: number; forMs: number }
  | { kind: 'router-silent'; router: string; atMs: number; forMs: number }
  | {
      kind: 'trigger';
      router: string;
      atMs: number;
      /** Regex on the command path the router executes. */
      match: string;
      action: 'kill-worker' | 'pause-worker' | 'reset-link' | 'kill-postgres';
      worker: 'worker-a' | 'worker-b';
      forMs: number;
    };

export interface EpisodePlan {
  readonly seed: number;
  readonly episode: number;
  readonly jobs: JobPlan[];
  readonly faults: FaultPlan[];
}

const PROCS: ProcName[] = ['api', 'worker-a', 'worker-b', 'postgres', 'redis'];
/** Behind a gateway: the gateway process too, and its links (worker↔gateway, gateway↔redis). */
const GATEWAY_PROCS: ProcName[] = [...PROCS, 'gateway'];
const KINDS: JobKindPlan[] = [
  'apply-config',
  'apply-config',
  'apply-config',
  'run-command',
  'run-command',
  'backup',
  'restore',
  'reboot',
  'upgrade',
  'bulk',
];
const TRIGGERS = [
  '^/ip/firewall/address-list/add$',
  '^/system/reboot$',
  '^/system/package/update/install$',
  '^/system/reset-configuration$',
  '^/file/add$',
];

/** Episode `episode` of campaign `seed` (independent of the others, so `--from K` replays it). */
export function planEpisode(
  seed: number,
  episode: number,
  routers: number,
  lockTtlMs: number,
  gateway = false,
): EpisodePlan {
  const r = rng((seed * 7919 + episode * 104729) >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const routerNames = Array.from({ length: routers }, (_, i) => `r${i + 1}`);
  const window = 3000;
  const jobs: JobPlan[] = [];
  const count = int(5, 9);
  for (let n = 0; n < count; n++) {
    const kind = pick(KINDS);
    jobs.push({
      n,
      kind,
      router: pick(routerNames),
      atMs: int(0, window),
      ...(r() < 0.25 ? { repeatAfterMs: int(0, 1500) } : {}),
    });
  }
  const links = [
    'api-pg',
    'worker-pg',
    'api-redis',
    'worker-redis',
    ...(gateway ? ['worker-gw', 'gw-redis'] : []),
    ...routerNames.map((x) => routerLink(x, gateway)),
  ];
  const procs = gateway ? GATEWAY_PROCS : PROCS;
  const faults: FaultPlan[] = [];
  const nFaults = int(1, 3);
  for (let i = 0; i < nFaults; i++) {
    const atMs = int(200, window);
    const forMs = int(300, lockTtlMs * 2 + 500);
    const k = pick([
      'kill',
      'kill',
      'term',
      'pause',
      'pause',
      'link-reset',
      'link-latency',
      'link-blackhole',
      'router-reboot',
      'router-drop',
      'router-silent',
      'trigger',
      'trigger',
      'trigger',
    ] as const);
    switch (k) {
      case 'kill':
      case 'term':
      case 'pause':
        faults.push({ kind: k, proc: pick(procs), atMs, forMs });
        break;
      case 'link-reset':
        faults.push({ kind: k, link: pick(links), atMs });
        break;
      case 'link-latency':
        faults.push({ kind: k, link: pick(links), atMs, forMs, ms: int(20, 400) });
        break;
      case 'link-blackhole':
        faults.push({ kind: k, link: pick(links), atMs, forMs });
        break;
      case 'router-reboot':
        faults.push({ kind: k, router: pick(routerNames), atMs });
        break;
      case 'router-drop':
      case 'router-silent':
        faults.push({ kind: k, router: pick(routerNames), atMs, forMs: Math.min(forMs, 2500) });
        break;
      case 'trigger':
        faults.push({
          kind: k,
          router: pick(routerNames),
          atMs: 0,
          match: pick(TRIGGERS),
          action: pick(['kill-worker', 'kill-worker', 'pause-worker', 'reset-link', 'kill-postgres'] as const),
          worker: pick(['worker-a', 'worker-b'] as const),
          forMs,
        });
        break;
    }
  }
  return { seed, episode, jobs, faults };
}

export function describeFault(f: FaultPlan): string {
  switch (f.kind) {
    case 'kill':
      return `@${f.atMs}ms kill -9 ${f.proc}, restarted ${f.forMs}ms later`;
    case 'term':
      return `@${f.atMs}ms ${f.proc === 'postgres' ? 'SIGINT (fast shutdown)' : 'SIGTERM'} ${f.proc}, restarted ${f.forMs}ms after it exited`;
    case 'pause':
      return `@${f.atMs}ms SIGSTOP ${f.proc} for ${f.forMs}ms`;
    case 'link-reset':
      return `@${f.atMs}ms reset link ${f.link}`;
    case 'link-latency':
      return `@${f.atMs}ms +${f.ms}ms latency on ${f.link} for ${f.forMs}ms`;
    case 'link-blackhole':
      return `@${f.atMs}ms blackhole ${f.link} for ${f.forMs}ms`;
    case 'router-reboot':
      return `@${f.atMs}ms reboot router ${f.router}`;
    case 'router-drop':
      return `@${f.atMs}ms ${f.router} drops connections for ${f.forMs}ms`;
    case 'router-silent':
      return `@${f.atMs}ms ${f.router} goes silent for ${f.forMs}ms`;
    case 'trigger':
      return `when ${f.router} executes ${f.match}: ${f.action}${f.action.endsWith('worker') ? ` ${f.worker}` : ''}${f.action === 'pause-worker' ? ` for ${f.forMs}ms` : ''}`;
  }
}

/** The kind of a fault for the run table ("kill -9 worker", "link blackhole", ...). */
const LINK_LABELS: Record<string, string> = {
  'api-pg': 'api↔postgres',
  'worker-pg': 'worker↔postgres',
  'api-redis': 'api↔redis',
  'worker-redis': 'worker↔redis',
  'worker-gw': 'worker↔gateway',
  'gw-redis': 'gateway↔redis',
  router: 'worker↔router',
  'gw-router': 'gateway↔router',
};

export function faultClass(f: FaultPlan): string {
  switch (f.kind) {
    case 'kill':
    case 'term':
    case 'pause':
      return `${f.kind === 'kill' ? 'kill -9' : f.kind === 'term' ? (f.proc === 'postgres' ? 'SIGINT' : 'SIGTERM') : 'SIGSTOP/SIGCONT'} ${f.proc.startsWith('worker') ? 'worker' : f.proc}`;
    case 'link-reset':
    case 'link-latency':
    case 'link-blackhole':
      return `${f.kind.replace('link-', 'link ')} ${LINK_LABELS[f.link.replace(/:.*$/, '')] ?? f.link}`;
    case 'router-reboot':
    case 'router-drop':
    case 'router-silent':
      return f.kind.replace('-', ' ');
    case 'trigger':
      return `trigger ${f.action} on ${f.match.replace(/[$^]/g, '')}`;
  }
}
