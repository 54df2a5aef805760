import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { GatewayLinkClient, SiteTunnelEntry } from '@backplane/gateway-link';
import type { Logger } from 'pino';
import { z } from 'zod';

/** `sites.json` (0600): parsed when loaded, a broken file is ignored (a full sync follows). */
const CacheFile = z.object({
  version: z.literal(1),
  verifierKey: z.string(),
  cursor: z.number(),
  sites: z.array(z.tuple([z.string(), z.string(), z.string().nullable(), z.boolean()])),
});
type CacheFile = z.infer<typeof CacheFile>;

export interface SiteEntry {
  readonly address: string;
  readonly verifier: string | null;
  readonly active: boolean;
}

/** Limits of the pulls a tunnel attempt triggers when the directory cannot admit it (see {@link SiteDirectory.refreshFor}). */
export interface MissRefreshLimits {
  /** After a miss-triggered pull that did not get the attempt admitted, the same site triggers none for this long (ms, default 5 s). */
  readonly negativeTtlMs?: number;
  /** Miss-triggered pulls per second over all sites (default 5; burst the same). */
  readonly perSecond?: number;
}

/**
 * What the gateway knows about sites: address, tunnel verifier, allowed or not. Pulled
 * from the control plane as deltas (a revision cursor) every few seconds, and at once when
 * a tunnel attempt finds a site unknown or its secret not matching ({@link refreshFor}: a
 * site created or re-keyed a moment ago is admitted on its first attempt). Kept in a 0600
 * file under DATA_DIR, so known sites keep reconnecting while the control plane is down.
 */
export class SiteDirectory {
  private readonly sites = new Map<string, SiteEntry>();
  private key: Buffer | undefined;
  private cursor = 0;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  lastSyncAt: Date | undefined;
  lastSyncError: string | undefined;
  /** Pulls triggered by misses; misses answered without a pull (negative cache, rate limit). */
  readonly missCounters = { refreshes: 0, negativeCached: 0, rateLimited: 0 };
  private readonly missFlights = new Map<string, Promise<void>>();
  private readonly missRefreshedAt = new Map<string, number>();
  private missTokens: number;
  private missRefilledAt = Date.now();

  constructor(
    private readonly file: string,
    private readonly link: Pick<GatewayLinkClient, 'sites'>,
    private readonly logger: Logger,
    private readonly pageSize = 5000,
    private readonly missLimits: MissRefreshLimits = {},
  ) {
    this.missTokens = missLimits.perSecond ?? 5;
  }

  get size(): number {
    return this.sites.size;
  }
  get verifierKey(): Buffer | undefined {
    return this.key;
  }

  get(siteId: string): SiteEntry | undefined {
    return this.sites.get(siteId);
  }

  /** Loads the cache file if there is one; a broken file is ignored (a full sync follows). */
  load(): boolean {
    let parsed: CacheFile;
    try {
      const r = CacheFile.safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
      if (!r.success) {
        this.logger.warn({ file: this.file, err: r.error.issues[0]?.message }, 'site cache unreadable: ignored');
        return false;
      }
      parsed = r.data;
    } catch {
      return false;
    }
    this.key = Buffer.from(parsed.verifierKey, 'base64');
    this.cursor = parsed.cursor;
    const sites: CacheFile['sites'] = parsed.sites;
    for (const [id, address, verifier, active] of sites) this.sites.set(id, { address, verifier, active });
    this.logger.info({ sites: this.sites.size, cursor: this.cursor, file: this.file }, 'site cache loaded');
    return true;
  }

  apply(entries: readonly SiteTunnelEntry[]): void {
    for (const e of entries) {
      this.sites.set(e.siteId, { address: e.address, verifier: e.verifier, active: e.active });
      if (e.rev > this.cursor) this.cursor = e.rev;
    }
    if (entries.length) this.dirty = true;
  }

  /**
   * A tunnel attempt for `siteId` could not be admitted from what the directory holds (site
   * unknown, no verifier, secret not matching): pulls the deltas now, so a site created or
   * given new credentials since the last pull gets in on its first attempt instead of the
   * router's next retry. Single-flight per site (and the pull itself is shared by all);
   * undefined — answer from the directory as it is — when such a pull for this site did not
   * help less than `negativeTtlMs` ago ({@link missed}) or more than `perSecond` such pulls
   * ran in the last second.
   * Resolves after a pull that started after the miss (never throws).
   */
  refreshFor(siteId: string): Promise<void> | undefined {
    const inFlight = this.missFlights.get(siteId);
    if (inFlight) return inFlight;
    const now = Date.now();
    const last = this.missRefreshedAt.get(siteId);
    if (last !== undefined && now - last < (this.missLimits.negativeTtlMs ?? 5000)) {
      this.missCounters.negativeCached++;
      return undefined;
    }
    const rate = this.missLimits.perSecond ?? 5;
    this.missTokens = Math.min(rate, this.missTokens + ((now - this.missRefilledAt) / 1000) * rate);
    this.missRefilledAt = now;
    if (this.missTokens < 1) {
      this.missCounters.rateLimited++;
      return undefined;
    }
    this.missTokens -= 1;
    this.missCounters.refreshes++;
    // a pull already running may have been sent before the site existed: wait for it, then pull again
    const running = this.syncing;
    const pull = running ? running.catch(() => undefined).then(() => this.sync()) : this.sync();
    const p = pull.catch(() => undefined).finally(() => this.missFlights.delete(siteId));
    this.missFlights.set(siteId, p);
    return p;
  }

  /** The pull did not help (the attempt was still refused): no pull for this site for `negativeTtlMs`. */
  missed(siteId: string): void {
    this.missRefreshedAt.set(siteId, Date.now());
    if (this.missRefreshedAt.size > 10_000) this.pruneMisses();
  }

  private pruneMisses(): void {
    const cutoff = Date.now() - (this.missLimits.negativeTtlMs ?? 5000);
    for (const [id, at] of this.missRefreshedAt) if (at < cutoff) this.missRefreshedAt.delete(id);
  }

  /** One pull of every delta since the cursor; resolves when caught up. */
  sync(): Promise<void> {
    this.syncing ??= this.doSync().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async doSync(): Promise<void> {
    try {
      for (;;) {
        const page = await this.link.sites(this.cursor, this.pageSize);
        const key = Buffer.from(page.verifierKey, 'base64');
        if (!this.key || !this.key.equals(key)) {
          this.key = key;
          this.dirty = true;
        }
        this.apply(page.items);
        if (page.next > this.cursor) this.cursor = page.next;
        if (!page.more) break;
      }
      this.lastSyncAt = new Date();
      if (this.lastSyncError) this.logger.info('control plane reachable again: site cache in sync');
      this.lastSyncError = undefined;
      this.save();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (msg !== this.lastSyncError)
        this.logger.warn({ err: msg, cachedSites: this.sites.size }, 'site sync failed; serving from the cache');
      this.lastSyncError = msg;
      throw err;
    }
  }

  /** Pulls every `intervalMs`; errors are logged, the cache keeps serving. */
  startPolling(intervalMs: number): void {
    const tick = (): void => {
      this.sync()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, intervalMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.save();
  }

  /** Atomic write (tmp + rename), mode 0600. */
  save(): void {
    if (!this.dirty || !this.key) return;
    const data: CacheFile = {
      version: 1,
      verifierKey: this.key.toString('base64'),
      cursor: this.cursor,
      sites: [...this.sites].map(([id, s]) => [id, s.address, s.verifier, s.active]),
    };
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(data), { mode: 0o600 });
    renameSync(tmp, this.file);
    this.dirty = false;
  }
}
