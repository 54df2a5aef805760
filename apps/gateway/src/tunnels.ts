import { connect } from 'node:net';
import { checkTunnelSecret, tunnelUserToSiteId } from '@backplane/contracts';
import { tunnelKey, type TunnelEvent, type TunnelRecord } from '@backplane/gateway-link';
import type { ManagementClient, ManagementEvent } from '@backplane/openvpn';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AuthFailureLimiter } from './auth-limiter';
import type { SiteDirectory } from './site-directory';

export const TUNNEL_NETMASK = '255.192.0.0';

export interface Tunnel {
  readonly cid: number;
  readonly siteId: string;
  readonly address: string;
  readonly sourceIp: string;
  connectedSince: Date;
  bytesIn: number;
  bytesOut: number;
  latencyMs: number | null;
  established: boolean;
}

export interface TunnelManagerOptions {
  readonly gatewayId: string;
  readonly regionSlug: string;
  readonly redis: Redis;
  readonly redisPrefix: string;
  readonly directory: SiteDirectory;
  readonly logger: Logger;
  /** Registry TTL (s); refreshed every ttl/3. */
  readonly registryTtlSeconds?: number;
  /** Records per pipelined registry batch between event-loop yields (default 100). */
  readonly registryChunk?: number;
  readonly limiter?: AuthFailureLimiter;
  /** Where to probe a site's API port for latency (default: its tunnel address, 8728). */
  readonly routerEndpoint?: (siteId: string, address: string) => { host: string; port: number };
  readonly latencyIntervalMs?: number;
  /** Sink for tunnel events (the outbox to the control plane). */
  readonly onEvent: (event: TunnelEvent) => void;
}

const DEL_IF_OURS = `if redis.call('GET', KEYS[1]) and cjson.decode(redis.call('GET', KEYS[1])).gatewayId == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Tunnels on this gateway: admits or refuses every CONNECT/REAUTH, tracks established
 * tunnels, bytes and latency, and mirrors them into the Redis registry (one key per site
 * with a TTL this gateway keeps refreshing) so every api replica can find the gateway
 * holding a site.
 */
export class TunnelManager {
  private readonly byCid = new Map<number, Tunnel>();
  private readonly bySite = new Map<string, Tunnel>();
  private mgmt: ManagementClient | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private refreshing: Promise<void> | undefined;
  /** The last completed registry refresh: records written, wall time, and the longest synchronous slice (ms). */
  lastRefresh: { records: number; tookMs: number; longestSliceMs: number } | undefined;
  private probeCursor = 0;
  private latencyTimer: NodeJS.Timeout | undefined;
  private readonly limiter: AuthFailureLimiter;
  private readonly ttl: number;
  readonly counters = { accepted: 0, denied: 0, rateLimited: 0, reconciled: 0, deferred: 0 };
  /** CONNECTs waiting for a directory pull before their answer: cid -> kid. */
  private readonly awaiting = new Map<number, number>();
  /** A deliberate openvpn restart in progress (its reason): new tunnels refused, disconnects say why. */
  private restarting: string | undefined;

  constructor(private readonly o: TunnelManagerOptions) {
    this.limiter = o.limiter ?? new AuthFailureLimiter();
    this.ttl = o.registryTtlSeconds ?? 90;
  }

  get online(): number {
    return [...this.bySite.values()].filter((t) => t.established).length;
  }

  tunnelOf(siteId: string): Tunnel | undefined {
    const t = this.bySite.get(siteId);
    return t?.established ? t : undefined;
  }

  attach(mgmt: ManagementClient): void {
    this.mgmt = mgmt;
    mgmt.on('event', (e) => this.onEvent(e));
    mgmt.on('ready', () => {
      this.reconcile().catch((err: unknown) => this.o.logger.warn({ err }, 'reconcile after attach failed'));
    });
    this.refreshTimer = setInterval(() => void this.refreshRegistry(), Math.max(1000, (this.ttl * 1000) / 3));
    this.latencyTimer = setInterval(() => void this.probeLatency(), 1000);
  }

  /**
   * A deliberate openvpn restart drains: new CONNECTs are refused (`gateway-restarting`, not
   * counted as a failure; routers retry) and the disconnects it causes carry its reason,
   * until {@link endRestart}. Renegotiations of existing tunnels are still answered.
   */
  beginRestart(reason: string): void {
    this.restarting = reason;
  }

  endRestart(): void {
    this.restarting = undefined;
  }

  stop(): void {
    clearInterval(this.refreshTimer);
    clearInterval(this.latencyTimer);
  }

  private onEvent(e: ManagementEvent): void {
    switch (e.type) {
      case 'client-connect':
      case 'client-reauth':
        this.authenticate(e.cid, e.kid, e.env, e.type === 'client-reauth');
        return;
      case 'client-established':
        this.established(e.cid, e.env);
        return;
      case 'client-disconnect':
        this.disconnected(e.cid, e.env);
        return;
      case 'bytecount-client': {
        const t = this.byCid.get(e.cid);
        if (t) {
          t.bytesIn = e.bytesIn;
          t.bytesOut = e.bytesOut;
        }
        return;
      }
      default:
        return;
    }
  }

  private deny(
    cid: number,
    kid: number,
    ip: string,
    reason: string,
    siteId: string | undefined,
    countFailure: boolean,
  ): void {
    if (countFailure) this.limiter.fail(ip);
    this.counters.denied++;
    this.o.logger.info({ cid, siteId, sourceIp: ip, reason }, 'tunnel denied');
    this.mgmt
      ?.clientDeny(cid, kid, reason, 'authentication failed')
      .catch((err: unknown) => this.o.logger.warn({ err, cid }, 'client-deny failed'));
    this.o.onEvent({
      type: 'auth',
      siteId,
      gatewayId: this.o.gatewayId,
      sourceIp: ip,
      at: new Date().toISOString(),
      accepted: false,
      reason,
    });
  }

  /**
   * The decision for one CONNECT/REAUTH. The answer goes out at once (no awaits before it),
   * except when the site directory cannot admit the tunnel (site unknown, no verifier, secret
   * not matching): then the directory pulls from the control plane first (rate-limited,
   * single-flight per site, see {@link SiteDirectory.refreshFor}) and the decision is taken
   * again with what it learned — a site onboarded a moment ago is admitted on its first try.
   */
  private authenticate(
    cid: number,
    kid: number,
    env: Readonly<Record<string, string>>,
    reauth: boolean,
    refreshed = false,
  ): void {
    const ip = env['untrusted_ip'] ?? env['trusted_ip'] ?? '';
    if (!refreshed && this.limiter.blocked(ip)) {
      this.counters.rateLimited++;
      this.counters.denied++;
      this.mgmt?.clientDeny(cid, kid, 'rate-limited', 'authentication failed').catch(() => undefined);
      return;
    }
    const user = env['username'] ?? env['common_name'] ?? '';
    const siteId = tunnelUserToSiteId(user);
    if (!siteId) return this.deny(cid, kid, ip, 'bad-user', undefined, true);
    if (this.restarting !== undefined && !reauth) return this.deny(cid, kid, ip, 'gateway-restarting', siteId, false);
    const site = this.o.directory.get(siteId);
    const key = this.o.directory.verifierKey;
    const existing = this.byCid.get(cid);
    const password = env['password'];
    let miss: 'unknown-site' | 'no-credential' | 'bad-secret' | undefined;
    if (!site) miss = 'unknown-site';
    else if (!site.active) return this.deny(cid, kid, ip, 'site-disabled', siteId, false);
    else if (!site.verifier || !key) miss = 'no-credential';
    else if (reauth && password === undefined && existing?.siteId === siteId) {
      // REAUTH (TLS renegotiation) carries no password: the tunnel was checked at CONNECT.
    } else if (password === undefined || !checkTunnelSecret(key, password, site.verifier)) miss = 'bad-secret';
    if (miss) {
      const pull = refreshed || password === undefined ? undefined : this.o.directory.refreshFor(siteId);
      if (!pull) {
        if (refreshed) this.o.directory.missed(siteId); // the pull did not help: no more for a while
        return this.deny(cid, kid, ip, miss, siteId, true);
      }
      this.counters.deferred++;
      this.awaiting.set(cid, kid);
      void pull.then(() => {
        // the client went away (or a newer key took over) while the directory pulled
        if (this.awaiting.get(cid) !== kid) return;
        this.awaiting.delete(cid);
        this.authenticate(cid, kid, env, reauth, true);
      });
      return;
    }
    if (!site) return; // (narrowing: a missing site is a miss above)
    this.counters.accepted++;
    this.mgmt
      ?.clientAuth(cid, kid, [`ifconfig-push ${site.address} ${TUNNEL_NETMASK}`])
      .catch((err: unknown) => this.o.logger.warn({ err, cid, siteId }, 'client-auth failed'));
    if (reauth && existing) return;
    // openvpn's connection time when it says (see established)
    const since = Number(env['time_unix']);
    const t: Tunnel = {
      cid,
      siteId,
      address: site.address,
      sourceIp: ip,
      connectedSince: Number.isSafeInteger(since) && since > 0 ? new Date(since * 1000) : new Date(),
      bytesIn: 0,
      bytesOut: 0,
      latencyMs: null,
      established: false,
    };
    this.byCid.set(cid, t);
    this.o.onEvent({
      type: 'auth',
      siteId,
      gatewayId: this.o.gatewayId,
      sourceIp: ip,
      at: t.connectedSince.toISOString(),
      accepted: true,
    });
  }

  private established(cid: number, env: Readonly<Record<string, string>> = {}): void {
    const t = this.byCid.get(cid);
    if (!t) return;
    t.established = true;
    // openvpn's own connection time (whole seconds), the same `status 3` reports: a gateway
    // that adopts this tunnel after a restart reports the same connectedSince
    const since = Number(env['time_unix']);
    if (Number.isSafeInteger(since) && since > 0) t.connectedSince = new Date(since * 1000);
    const previous = this.bySite.get(t.siteId);
    if (previous && previous.cid !== cid) this.byCid.delete(previous.cid);
    this.bySite.set(t.siteId, t);
    this.o.logger.info({ cid, siteId: t.siteId, address: t.address, sourceIp: t.sourceIp }, 'tunnel up');
    void this.publish(t);
    this.o.onEvent({
      type: 'connect',
      siteId: t.siteId,
      gatewayId: this.o.gatewayId,
      sourceIp: t.sourceIp,
      at: new Date().toISOString(),
    });
    void this.probe(t);
  }

  private disconnected(cid: number, env: Readonly<Record<string, string>>): void {
    this.awaiting.delete(cid);
    const t = this.byCid.get(cid);
    if (!t) return;
    this.byCid.delete(cid);
    if (this.bySite.get(t.siteId) !== t) return;
    this.bySite.delete(t.siteId);
    this.o.logger.info({ cid, siteId: t.siteId }, 'tunnel down');
    this.o.redis
      .eval(DEL_IF_OURS, 1, tunnelKey(this.o.redisPrefix, t.siteId), this.o.gatewayId)
      .catch((err: unknown) => this.o.logger.warn({ err }, 'registry delete failed'));
    this.o.onEvent({
      type: 'disconnect',
      siteId: t.siteId,
      gatewayId: this.o.gatewayId,
      sourceIp: t.sourceIp,
      at: new Date().toISOString(),
      bytesIn: Number(env['bytes_received'] ?? t.bytesIn),
      bytesOut: Number(env['bytes_sent'] ?? t.bytesOut),
      durationSeconds: Number(env['time_duration'] ?? Math.round((Date.now() - t.connectedSince.getTime()) / 1000)),
      ...(this.restarting !== undefined ? { reason: `openvpn restart: ${this.restarting}`.slice(0, 200) } : {}),
    });
  }

  /**
   * After every management (re)attach: tunnels that openvpn still holds are adopted from
   * `status 3` (a restarted gateway knows them again), tunnels it no longer has are dropped.
   * Stragglers (CONNECT lost while detached) are killed by the management client itself.
   */
  async reconcile(): Promise<void> {
    if (!this.mgmt) return;
    const status = await this.mgmt.status();
    const seen = new Set<number>();
    for (const c of status.clients) {
      if (c.clientId === undefined || c.virtualAddress === '') continue;
      seen.add(c.clientId);
      if (this.byCid.has(c.clientId)) continue;
      const siteId = tunnelUserToSiteId(c.username || c.commonName);
      const site = siteId ? this.o.directory.get(siteId) : undefined;
      if (!siteId || !site || !site.active || site.address !== c.virtualAddress) {
        await this.mgmt.clientKill(c.clientId).catch(() => undefined);
        continue;
      }
      const t: Tunnel = {
        cid: c.clientId,
        siteId,
        address: c.virtualAddress,
        sourceIp: c.realAddress.replace(/:\d+$/, ''),
        connectedSince: c.connectedSince ?? new Date(),
        bytesIn: c.bytesReceived,
        bytesOut: c.bytesSent,
        latencyMs: null,
        established: true,
      };
      this.byCid.set(t.cid, t);
      this.bySite.set(siteId, t);
      this.counters.reconciled++;
    }
    for (const [cid, t] of this.byCid) {
      if (seen.has(cid) || !t.established) continue;
      this.disconnected(cid, {});
    }
    await this.refreshRegistry();
  }

  private record(t: Tunnel, updatedAt = new Date().toISOString()): TunnelRecord {
    return {
      siteId: t.siteId,
      gatewayId: this.o.gatewayId,
      regionSlug: this.o.regionSlug,
      address: t.address,
      sourceIp: t.sourceIp,
      connectedSince: t.connectedSince.toISOString(),
      bytesIn: t.bytesIn,
      bytesOut: t.bytesOut,
      latencyMs: t.latencyMs,
      updatedAt,
    };
  }

  private async publish(t: Tunnel): Promise<void> {
    try {
      await this.o.redis.set(tunnelKey(this.o.redisPrefix, t.siteId), JSON.stringify(this.record(t)), 'EX', this.ttl);
    } catch (err) {
      this.o.logger.warn({ err, siteId: t.siteId }, 'registry write failed');
    }
  }

  /**
   * Rewrites every record (fresh bytes/latency, renewed TTL) in small pipelined batches,
   * yielding to the event loop (`setImmediate`) after each one: at 10k tunnels a 1,000-record
   * synchronous batch blocked the loop for 55-108 ms (relay p99 spikes); 100 records stay
   * around a millisecond. One refresh at a time (a slow Redis cannot pile them up).
   */
  async refreshRegistry(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const started = performance.now();
    const all = [...this.bySite.values()];
    const chunk = this.o.registryChunk ?? 100;
    const updatedAt = new Date().toISOString();
    let longestSliceMs = 0;
    let records = 0;
    for (let i = 0; i < all.length; i += chunk) {
      const sliceStart = performance.now();
      const p = this.o.redis.pipeline();
      for (let j = i; j < Math.min(all.length, i + chunk); j++) {
        const t = all[j]!;
        if (!t.established) continue;
        p.set(tunnelKey(this.o.redisPrefix, t.siteId), JSON.stringify(this.record(t, updatedAt)), 'EX', this.ttl);
        records++;
      }
      const done = p.exec();
      longestSliceMs = Math.max(longestSliceMs, performance.now() - sliceStart);
      try {
        await done;
      } catch (err) {
        this.o.logger.warn({ err }, 'registry refresh failed');
        return;
      }
      // the reply may already be parsed in the same tick: give timers and I/O their turn
      await new Promise<void>((r) => setImmediate(r));
    }
    this.lastRefresh = { records, tookMs: performance.now() - started, longestSliceMs };
  }

  /** Latency over the tunnel: time to open a TCP connection to the router's API port. */
  private probe(t: Tunnel): Promise<void> {
    const ep = this.o.routerEndpoint?.(t.siteId, t.address) ?? { host: t.address, port: 8728 };
    return new Promise<void>((resolve) => {
      const start = process.hrtime.bigint();
      const s = connect({ host: ep.host, port: ep.port });
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        s.destroy();
        t.latencyMs = ok ? Number(process.hrtime.bigint() - start) / 1e6 : null;
        resolve();
      };
      const timer = setTimeout(() => done(false), 3000);
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
  }

  /**
   * Every tunnel is probed once per `latencyIntervalMs` (default 60 s), spread evenly over
   * the interval (a slice every second) so 10,000 tunnels never cause a burst of connects.
   */
  private async probeLatency(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const all = [...this.bySite.values()];
      const perTick = Math.ceil(all.length / Math.max(1, (this.o.latencyIntervalMs ?? 60_000) / 1000));
      if (this.probeCursor >= all.length) this.probeCursor = 0;
      const slice = all.slice(this.probeCursor, this.probeCursor + perTick).filter((t) => t.established);
      this.probeCursor += perTick;
      await Promise.all(slice.map((t) => this.probe(t)));
    } finally {
      this.probing = false;
    }
  }
}
