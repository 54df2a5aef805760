import { Injectable } from '@nestjs/common';
import type { TenantContext } from '../common/request';

/** A cached page is served for at most this long, whatever happened (health is computed from the clock). */
export const SITE_LIST_CACHE_TTL_MS = 1_000;
/** Pages kept per api process (oldest dropped first). */
export const SITE_LIST_CACHE_MAX_ENTRIES = 5_000;

interface Entry {
  readonly seq: number;
  readonly until: number;
  readonly value: unknown;
}

/**
 * Site list pages as answered, per tenant and role and query (ADR 0076). An entry is valid
 * while the tenant's realtime sequence number (read with the request's rate limit) is the one
 * it was stored at: every `site.changed`/`site.status` event — every tenant event — moves it,
 * so the next request after a change reads PostgreSQL again. And never longer than
 * SITE_LIST_CACHE_TTL_MS, for what changes without an event (health turning with the clock).
 * Keys start with the tenant and the role: no response crosses tenants or roles.
 */
@Injectable()
export class SiteListCache {
  private readonly entries = new Map<string, Entry>();
  /** Off switch for benchmarks that measure the uncached path (`scripts/bench/api-sites.ts`). */
  bypass = false;

  key(t: TenantContext, query: readonly unknown[]): string | null {
    if (t.seq === undefined || this.bypass) return null; // not read with the gate (no cache)
    return `${t.scope.tenantId}\u0000${t.role}\u0000${JSON.stringify(query)}`;
  }

  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names what it stored under the key
  get<T>(t: TenantContext, key: string, now = Date.now()): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until <= now || e.seq !== t.seq) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value as T;
  }

  /** Stores a page read after the request's sequence number was taken (so it is at least that fresh). */
  set(t: TenantContext, key: string, value: unknown, now = Date.now()): void {
    if (t.seq === undefined) return;
    this.entries.delete(key);
    this.entries.set(key, { seq: t.seq, until: now + SITE_LIST_CACHE_TTL_MS, value });
    if (this.entries.size > SITE_LIST_CACHE_MAX_ENTRIES) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }
}
