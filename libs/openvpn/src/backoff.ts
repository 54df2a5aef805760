/** Delays of an exponential backoff with jitter (reconnects, restarts). */
export interface BackoffOptions {
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  /** 0..1, share of each delay that is randomised. */
  readonly jitter?: number;
}

/**
 * Delay before retry number `attempt` (0-based): `initial * 2^attempt` capped at `max`, then
 * randomised down by up to `jitter` of itself. `options` wins over `defaults` field by field.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  defaults: Required<BackoffOptions>,
  random: () => number = Math.random,
): number {
  const initial = options.initialDelayMs ?? defaults.initialDelayMs;
  const max = options.maxDelayMs ?? defaults.maxDelayMs;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? defaults.jitter));
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - jitter * random()));
}
