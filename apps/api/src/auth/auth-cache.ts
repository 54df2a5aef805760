import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { API_DEPS, type ApiDeps } from '../deps';

/** How long an authentication result is reused at most (revocations end it at once). */
export const AUTH_CACHE_TTL_MS = 5_000;
/** Entries kept per api process (oldest dropped first). */
export const AUTH_CACHE_MAX_ENTRIES = 50_000;
/**
 * How long a process may lag behind the Redis epoch (an invalidation it has not received yet)
 * before it assumes the message was lost and drops its whole cache. Requests never use the
 * cache while it lags, so this only decides when caching resumes.
 */
export const AUTH_CACHE_LAG_MS = 1_000;

/** What a revocation ends: one session, every session of a user, a tenant's memberships and keys, one API key. */
export type Revocation =
  { readonly session: string } | { readonly user: string } | { readonly tenant: string } | { readonly apiKey: string };

const Message = z.object({
  epoch: z.number().int().min(1),
  targets: z.array(z.string().max(200)).max(100),
});

const tagOf = (r: Revocation): string =>
  'session' in r ? `s:${r.session}` : 'user' in r ? `u:${r.user}` : 'tenant' in r ? `t:${r.tenant}` : `k:${r.apiKey}`;

/** Tags an entry carries: the revocations that end it. */
export interface CacheTags {
  readonly session?: string;
  readonly user?: string;
  readonly tenant?: string;
  /** Several tenants (a person's `/me` lists each of theirs). */
  readonly tenants?: readonly string[];
  readonly apiKey?: string;
}

interface Entry {
  readonly value: unknown;
  readonly until: number;
  readonly tags: readonly string[];
}

/**
 * INCR the epoch and publish it with the targets, atomically: messages carry consecutive
 * epochs in the order Redis ran them, so a subscriber that sees a jump knows it missed one.
 */
const REVOKE = `
local e = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], cjson.encode({ epoch = e, targets = cjson.decode(ARGV[1]) }))
return e
`;

/**
 * The api's short-lived cache of authentication results (sessions with their membership,
 * API keys), shared by REST and the realtime handshake (ADR 0076).
 *
 * Correctness does not rest on timing: every revocation (sign-out, password change, MFA
 * change, member removed or re-roled, tenant policy, API key revoked or renewed) increments
 * a Redis epoch after its commit and publishes the targets. Each request reads the epoch in
 * the same Redis call as its rate limit; a process uses its cache only when it has applied
 * every invalidation up to that epoch, otherwise it asks PostgreSQL. So a request that
 * starts after a revocation returned is checked against the database or a cache that has
 * already dropped the entry — on every api process.
 */
@Injectable()
export class AuthCache implements OnModuleInit, OnModuleDestroy {
  readonly epochKey: string;
  private readonly channel: string;
  private readonly entries = new Map<string, Entry>();
  /** Highest epoch whose invalidation this process applied (-1: not subscribed yet). */
  private applied = -1;
  private lagSince: number | null = null;
  private sub: Redis | undefined;
  private revokeSha: string | undefined;

  constructor(@Inject(API_DEPS) private readonly deps: ApiDeps) {
    this.epochKey = `${deps.redisPrefix}auth:epoch`;
    this.channel = `${deps.redisPrefix}auth:revoked`;
  }

  /**
   * Subscribes in the background: until the subscription stands (`applied` < 0) the cache is
   * simply not used, so start-up never waits for (or fails on) Redis here.
   */
  onModuleInit(): void {
    const sub = this.deps.redis.duplicate();
    this.sub = sub;
    sub.on('message', (_channel: string, raw: string) => this.onMessage(raw));
    sub.on('error', () => undefined); // reconnects on its own; the main connection reports Redis trouble
    void sub.subscribe(this.channel).then(
      () => this.resync(),
      (err: unknown) => this.deps.logger.warn({ err }, 'auth cache: not subscribed (cache off)'),
    );
    // After a reconnect, messages may have been lost: start over from the current epoch.
    sub.on('ready', () => {
      if (this.applied >= 0) void this.resync();
    });
  }

  async onModuleDestroy(): Promise<void> {
    this.entries.clear();
    // QUIT lets pending replies (a subscribe still in flight) arrive instead of failing them.
    await this.sub?.quit().catch(() => this.sub?.disconnect());
  }

  private async resync(): Promise<void> {
    try {
      const epoch = Number((await this.deps.redis.get(this.epochKey)) ?? 0);
      if (epoch > this.applied) {
        this.entries.clear();
        this.applied = epoch;
      }
    } catch (err) {
      this.deps.logger.warn({ err }, 'auth cache: epoch not read');
    }
  }

  private onMessage(raw: string): void {
    let msg: z.infer<typeof Message>;
    try {
      msg = Message.parse(JSON.parse(raw));
    } catch {
      this.entries.clear(); // unreadable: forget everything rather than guess
      return;
    }
    if (msg.epoch <= this.applied) return;
    if (msg.epoch === this.applied + 1) this.drop(msg.targets);
    else this.entries.clear(); // missed at least one
    this.applied = msg.epoch;
    this.lagSince = null;
  }

  private drop(tags: readonly string[]): void {
    const set = new Set(tags);
    for (const [k, e] of this.entries) if (e.tags.some((t) => set.has(t))) this.entries.delete(k);
  }

  /**
   * Whether this request may use the cache, given the epoch it read from Redis. While the
   * process lags behind it, no; after AUTH_CACHE_LAG_MS of lag it drops everything and catches up.
   */
  usable(observed: number, now = Date.now()): boolean {
    if (observed <= this.applied) {
      this.lagSince = null;
      return true;
    }
    if (this.applied < 0) return false; // not subscribed yet
    this.lagSince ??= now;
    if (now - this.lagSince >= AUTH_CACHE_LAG_MS) {
      this.entries.clear();
      this.applied = observed;
      this.lagSince = null;
    }
    return false;
  }

  /** A token for {@link set}: taken before reading the database. */
  mark(): number {
    return this.applied;
  }

  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names what it stored under the key
  get<T>(key: string, now = Date.now()): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value as T;
  }

  /**
   * Stores a result read from the database after `mark`; skipped when an invalidation was
   * applied meanwhile (the read may predate the revocation).
   */
  set(key: string, value: unknown, tags: CacheTags, mark: number, until = Date.now() + AUTH_CACHE_TTL_MS): void {
    if (mark < 0 || mark !== this.applied) return;
    const list: string[] = [];
    if (tags.session) list.push(`s:${tags.session}`);
    if (tags.user) list.push(`u:${tags.user}`);
    if (tags.tenant) list.push(`t:${tags.tenant}`);
    for (const t of tags.tenants ?? []) list.push(`t:${t}`);
    if (tags.apiKey) list.push(`k:${tags.apiKey}`);
    this.entries.delete(key);
    this.entries.set(key, { value, until: Math.min(until, Date.now() + AUTH_CACHE_TTL_MS), tags: list });
    if (this.entries.size > AUTH_CACHE_MAX_ENTRIES) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Ends cached authentication for the targets on every api process. Call it after the
   * change committed and before answering; it throws when Redis is unreachable, so a
   * revocation is never reported done while another process could still honour the old state.
   */
  async revoke(...targets: Revocation[]): Promise<void> {
    if (targets.length === 0) return;
    const tags = targets.map(tagOf);
    this.drop(tags); // this process at once; the message reaches the others (and us again)
    const args = [2, this.epochKey, this.channel, JSON.stringify(tags)] as const;
    this.revokeSha ??= (await this.deps.redis.script('LOAD', REVOKE)) as string;
    try {
      await this.deps.redis.evalsha(this.revokeSha, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      await this.deps.redis.eval(REVOKE, ...args);
    }
  }
}
