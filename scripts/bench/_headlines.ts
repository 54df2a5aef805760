/**
 * The headline figures of issue 19 that `npm run bench` writes to docs/benchmarks.json, with
 * their targets. Each bench module reports its own through `headline()`, so the key, unit
 * and target are spelled once (`_run.spec.ts` checks every key has a module).
 */
import type { Headline } from './_record';

export const HEADLINE_TARGETS = {
  relay_p99_overhead_ms_at_1000: { unit: 'ms', target: '<= 20 ms' },
  site_list_req_per_s: { unit: 'req/s', target: '>= 3000 req/s' },
  fanout_10k_total_s: { unit: 's', target: '<= 45 s' },
  fanout_10k_enqueue_s: { unit: 's', target: '<= 1.5 s' },
  realtime_5000_connect_s: { unit: 's', target: '<= 5 s' },
} as const satisfies Record<string, { unit: string; target: string }>;

export type HeadlineKey = keyof typeof HEADLINE_TARGETS;

/** A headline figure with its unit and target. */
export function headline(key: HeadlineKey, value: number): Headline {
  const { unit, target } = HEADLINE_TARGETS[key];
  return { key, value, unit, target };
}
