import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * One request's gate in one Redis call (ADR 0076): counts a hit on the fixed-window counter
 * KEYS[1] (expiry set when the window starts, like `EXPIRE … NX`), reads its TTL, peeks at the
 * counter KEYS[2] (count and TTL), and reads the numbers under KEYS[3…] (auth-cache epoch,
 * the tenant's realtime sequence) for the caches. Before: a 7-command MULTI.
 */
const GATE = `
local c = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
local ttl = redis.call('TTL', KEYS[1])
local out = { c, ttl, tonumber(redis.call('GET', KEYS[2]) or '0') or 0, redis.call('TTL', KEYS[2]) }
for i = 3, #KEYS do
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
end
return out
`;

/** A fixed-window hit alone (failed authentications). */
const HIT = `
local c = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return { c, redis.call('TTL', KEYS[1]) }
`;

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** Fixed-window counters in Redis (shared by every api replica). */
export class Throttle {
  private readonly scripts = new Map<string, string>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(kind: string, subject: string): string {
    return `${this.prefix}thr:${kind}:${createHash('sha256').update(subject).digest('base64url').slice(0, 22)}`;
  }

  /** EVALSHA, loading the script on the first NOSCRIPT (a restarted or failed-over Redis). */
  private async run(script: string, keys: readonly string[], args: readonly (string | number)[]): Promise<number[]> {
    let sha = this.scripts.get(script);
    if (!sha) {
      sha = sha1(script);
      this.scripts.set(script, sha);
    }
    try {
      return (await this.redis.evalsha(sha, keys.length, ...keys, ...args)) as number[];
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return (await this.redis.eval(script, keys.length, ...keys, ...args)) as number[];
    }
  }

  /** Counts one hit; returns the count in the current window and the seconds left. */
  async hit(kind: string, subject: string, windowSeconds: number): Promise<{ count: number; ttl: number }> {
    const [count = 0, ttl = windowSeconds] = await this.run(HIT, [this.key(kind, subject)], [windowSeconds]);
    return { count, ttl: ttl > 0 ? ttl : windowSeconds };
  }

  /**
   * `hit` on one counter and `peek` at another, plus the integer values of `reads` (raw
   * keys, 0 when absent), in one round trip and one script.
   */
  async hitAndPeek(
    hit: { kind: string; subject: string; windowSeconds: number },
    peek: { kind: string; subject: string },
    reads: readonly string[] = [],
  ): Promise<{ hit: { count: number; ttl: number }; peek: { count: number; ttl: number }; reads: number[] }> {
    const res = await this.run(
      GATE,
      [this.key(hit.kind, hit.subject), this.key(peek.kind, peek.subject), ...reads],
      [hit.windowSeconds],
    );
    const ttl = res[1] ?? hit.windowSeconds;
    return {
      hit: { count: res[0] ?? 0, ttl: ttl > 0 ? ttl : hit.windowSeconds },
      peek: { count: res[2] ?? 0, ttl: Math.max(1, res[3] ?? 1) },
      reads: reads.map((_, i) => res[4 + i] ?? 0),
    };
  }

  async peek(kind: string, subject: string): Promise<{ count: number; ttl: number }> {
    const key = this.key(kind, subject);
    const res = await this.redis.multi().get(key).ttl(key).exec();
    return { count: Number(res?.[0]?.[1] ?? 0), ttl: Math.max(1, Number(res?.[1]?.[1] ?? 1)) };
  }

  async reset(kind: string, subject: string): Promise<void> {
    await this.redis.del(this.key(kind, subject));
  }

  /** True the first time a value is seen within the window (TOTP replay protection). */
  async once(kind: string, subject: string, windowSeconds: number): Promise<boolean> {
    return (await this.redis.set(this.key(kind, subject), '1', 'EX', windowSeconds, 'NX')) === 'OK';
  }
}
