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

interface Queued {
  readonly script: string;
  readonly sha: string;
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
  readonly resolve: (v: number[]) => void;
  readonly reject: (err: unknown) => void;
}

const noScript = (err: unknown): boolean => err instanceof Error && err.message.startsWith('NOSCRIPT');

/**
 * Fixed-window counters in Redis (shared by every api replica).
 *
 * Calls made in one turn of the event loop leave in ONE pipeline (one socket write, one read
 * on the Redis side) at the end of that turn (`setImmediate`): a connect storm or a burst of
 * requests whose gates would each cost a write syscall (the largest share of a realtime
 * handshake's own CPU, ADR 0114) shares them instead. Each call still runs its own script,
 * atomically, with its own result: batching changes no count.
 */
export class Throttle {
  private readonly scripts = new Map<string, string>();
  private queue: Queued[] = [];
  private scheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(kind: string, subject: string): string {
    return `${this.prefix}thr:${kind}:${createHash('sha256').update(subject).digest('base64url').slice(0, 22)}`;
  }

  /** EVALSHA (batched with the turn's other calls), loading the script on NOSCRIPT (a restarted or failed-over Redis). */
  private run(script: string, keys: readonly string[], args: readonly (string | number)[]): Promise<number[]> {
    let sha = this.scripts.get(script);
    if (!sha) {
      sha = sha1(script);
      this.scripts.set(script, sha);
    }
    const call = new Promise<number[]>((resolve, reject) =>
      this.queue.push({ script, sha, keys, args, resolve, reject }),
    );
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return call;
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 1) {
      const c = batch[0]!;
      this.redis.evalsha(c.sha, c.keys.length, ...c.keys, ...c.args).then(
        (res) => c.resolve(res as number[]),
        (err: unknown) => this.retry(c, err),
      );
      return;
    }
    const pipeline = this.redis.pipeline();
    for (const c of batch) pipeline.evalsha(c.sha, c.keys.length, ...c.keys, ...c.args);
    pipeline.exec().then(
      (results) => {
        batch.forEach((c, i) => {
          const r = results?.[i];
          if (!r) c.reject(new Error('redis pipeline answered no result'));
          else if (r[0]) this.retry(c, r[0]);
          else c.resolve(r[1] as number[]);
        });
      },
      (err: unknown) => {
        for (const c of batch) c.reject(err);
      },
    );
  }

  private retry(c: Queued, err: unknown): void {
    if (!noScript(err)) return c.reject(err);
    this.redis.eval(c.script, c.keys.length, ...c.keys, ...c.args).then(
      (res) => c.resolve(res as number[]),
      (e: unknown) => c.reject(e),
    );
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
