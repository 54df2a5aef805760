/**
 * Failed tunnel logins per source IP in a sliding window. Over the limit, the gateway
 * denies at once without looking anything up, so a password-guessing source costs
 * almost nothing. Memory is bounded: the oldest sources are forgotten first.
 */
export class AuthFailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 60_000,
    private readonly maxSources = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  blocked(ip: string): boolean {
    const list = this.failures.get(ip);
    if (!list) return false;
    const cutoff = this.now() - this.windowMs;
    while (list.length && list[0]! <= cutoff) list.shift();
    if (!list.length) this.failures.delete(ip);
    return list.length >= this.maxFailures;
  }

  fail(ip: string): void {
    let list = this.failures.get(ip);
    if (!list) {
      if (this.failures.size >= this.maxSources) {
        const oldest = this.failures.keys().next().value;
        if (oldest !== undefined) this.failures.delete(oldest);
      }
      list = [];
      this.failures.set(ip, list);
    }
    list.push(this.now());
    if (list.length > this.maxFailures) list.shift();
  }
}
