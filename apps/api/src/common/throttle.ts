import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Fixed-window counters in Redis (shared by every api replica). */
export class Throttle {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(kind: string, subject: string): string {
    return `${this.prefix}thr:${kind}:${createHash('sha256').update(subject).digest('base64url').slice(0, 22)}`;
  }

  /** Counts one hit; returns the count in the current window and the seconds left. */
  async hit(kind: string, subject: string, windowSeconds: number): Promise<{ count: number; ttl: number }> {
    const key = this.key(kind, subject);
    const res = await this.redis.multi().incr(key).expire(key, windowSeconds, 'NX').ttl(key).exec();
    const count = Number(res?.[0]?.[1] ?? 0);
    const ttl = Number(res?.[2]?.[1] ?? windowSeconds);
    return { count, ttl: ttl > 0 ? ttl : windowSeconds };
  }

  /** `hit` on one counter and `peek` at another, in one round trip. */
  async hitAndPeek(
    hit: { kind: string; subject: string; windowSeconds: number },
    peek: { kind: string; subject: string },
  ): Promise<{ hit: { count: number; ttl: number }; peek: { count: number; ttl: number } }> {
    const key = this.key(hit.kind, hit.subject);
    const other = this.key(peek.kind, peek.subject);
    const res = await this.redis
      .multi()
      .incr(key)
      .expire(key, hit.windowSeconds, 'NX')
      .ttl(key)
      .get(other)
      .ttl(other)
      .exec();
    const ttl = Number(res?.[2]?.[1] ?? hit.windowSeconds);
    return {
      hit: { count: Number(res?.[0]?.[1] ?? 0), ttl: ttl > 0 ? ttl : hit.windowSeconds },
      peek: { count: Number(res?.[3]?.[1] ?? 0), ttl: Math.max(1, Number(res?.[4]?.[1] ?? 1)) },
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
