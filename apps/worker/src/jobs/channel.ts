import {
  RelayClient,
  RelayClientError,
  RelayRequest,
  TunnelRegistry,
  type RelayResponse,
  type RouterCredentials,
} from '@backplane/gateway-link';
import { RouterOsClient, RouterOsConnectionError, RouterOsLoginError, RouterOsTrapError } from '@backplane/routeros';
import type { Redis } from 'ioredis';
import { NamedError } from './named-error';

/** The router cannot be reached right now: the job waits and retries (it is not a failure). */
export class SiteUnreachableError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'SiteUnreachableError';
  }
}

/** The router refused a command (`!trap`): a real failure of the job. */
export class RouterCommandError extends NamedError {}

/**
 * The call never reached the router: the gateway refused the request itself (`bad_request`,
 * e.g. an attribute longer than a relayed call carries). As permanent as a refusal.
 */
export class RequestRefusedError extends RouterCommandError {}

export interface SiteTarget {
  readonly siteId: string;
  readonly credentials: RouterCredentials;
  /** The RouterOS version the site record knows (from the router's last poll), if any. */
  readonly knownVersion?: string;
}

/** How the worker reaches a site's router. */
export interface RouterChannel {
  /** True when "online" means a tunnel (reconnects are visible as a new connectedSince). */
  readonly tunnels: boolean;
  call(
    target: SiteTarget,
    command: string,
    attributes?: Readonly<Record<string, string>>,
    timeoutMs?: number,
  ): Promise<RelayResponse>;
  /** When the site's current tunnel came up; undefined when it has none (offline). */
  connectedSince(siteId: string): Promise<Date | undefined>;
  /**
   * One command over a connection opened for it (not a pooled one): proves the router accepts
   * new connections (commit-confirm). Without it, the caller forces the relay's pool to reconnect.
   */
  probe?(target: SiteTarget, timeoutMs?: number): Promise<void>;
  /** Releases pooled connections (the worker's stop). */
  close?(): Promise<void>;
}

/**
 * The production path, the same as the api's live calls: the tunnel registry in Redis says
 * which gateway holds the site; the gateway relays one RouterOS command over the tunnel.
 */
export class RelayChannel implements RouterChannel {
  readonly tunnels = true;
  private readonly relay: RelayClient;

  constructor(redis: Redis, prefix: string) {
    this.relay = new RelayClient({ registry: new TunnelRegistry(redis, prefix) });
  }

  async connectedSince(siteId: string): Promise<Date | undefined> {
    let rec;
    try {
      rec = await this.relay.registry.tunnel(siteId);
    } catch (err) {
      throw new SiteUnreachableError('bad_record', (err as Error).message);
    }
    return rec ? new Date(rec.connectedSince) : undefined;
  }

  async call(
    target: SiteTarget,
    command: string,
    attributes: Readonly<Record<string, string>> = {},
    timeoutMs = 60_000,
  ): Promise<RelayResponse> {
    try {
      return await this.relay.call(
        target.siteId,
        { credentials: target.credentials, command, attributes, timeoutMs },
        { timeoutMs: timeoutMs + 5000 },
      );
    } catch (err) {
      if (!(err instanceof RelayClientError)) throw err;
      if (err.code === 'bad_request') throw new RequestRefusedError(err.message);
      if (err.routerRefused) throw new RouterCommandError(err.message);
      throw new SiteUnreachableError(err.code, err.message);
    }
  }

  async close(): Promise<void> {
    await this.relay.close();
  }
}

/**
 * Routers reached directly (no tunnel): simulated fleets on loopback for tests and the
 * fan-out benchmark. A site is "online" while its API port accepts a login. Keeps one
 * connection per site.
 */
export class DirectChannel implements RouterChannel {
  readonly tunnels = false;
  private readonly clients = new Map<string, Promise<RouterOsClient>>();
  private readonly since = new Map<string, Date>();

  constructor(private readonly resolve: (siteId: string) => { host: string; port: number } | undefined) {}

  /** One connection per site and user (the routine and the elevated Backplane user, ADR 0053). */
  private key(target: SiteTarget): string {
    return `${target.siteId}\0${target.credentials.username}`;
  }

  private dropSite(siteId: string): void {
    for (const [key, c] of this.clients) {
      if (!key.startsWith(`${siteId}\0`)) continue;
      this.clients.delete(key);
      void c.then((x) => x.close()).catch(() => undefined);
    }
  }

  private client(target: SiteTarget): Promise<RouterOsClient> {
    const key = this.key(target);
    let c = this.clients.get(key);
    if (!c) {
      const where = this.resolve(target.siteId);
      if (!where) return Promise.reject(new SiteUnreachableError('site_offline', 'unknown site'));
      c = RouterOsClient.connect({
        host: where.host,
        port: where.port,
        username: target.credentials.username,
        password: target.credentials.password,
        connectTimeoutMs: 2000,
      });
      this.clients.set(key, c);
      c.catch(() => this.clients.delete(key));
    }
    return c;
  }

  async connectedSince(siteId: string): Promise<Date | undefined> {
    const where = this.resolve(siteId);
    if (!where) return undefined;
    const { connect } = await import('node:net');
    const up = await new Promise<boolean>((res) => {
      const s = connect({ host: where.host, port: where.port });
      const done = (ok: boolean) => {
        s.destroy();
        res(ok);
      };
      s.setTimeout(1000, () => done(false));
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
    if (!up) {
      this.since.delete(siteId);
      return undefined;
    }
    if (!this.since.has(siteId)) this.since.set(siteId, new Date());
    return this.since.get(siteId);
  }

  async call(
    target: SiteTarget,
    command: string,
    attributes: Readonly<Record<string, string>> = {},
    timeoutMs = 60_000,
  ): Promise<RelayResponse> {
    // What the gateway accepts, checked here too: a call the relay would refuse fails the same
    // way in tests and benchmarks that use this channel.
    const checked = RelayRequest.safeParse({ credentials: target.credentials, command, attributes, timeoutMs });
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw new RequestRefusedError(`${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid request'}`);
    }
    let client: RouterOsClient;
    try {
      client = await this.client(target);
    } catch (err) {
      this.dropSite(target.siteId);
      if (err instanceof SiteUnreachableError) throw err;
      if (err instanceof RouterOsLoginError) throw new SiteUnreachableError('router_login_failed', String(err));
      throw new SiteUnreachableError('router_unreachable', String(err));
    }
    try {
      const res = await client.exec(command, attributes, { timeoutMs });
      return { rows: res.rows, ...(res.ret !== undefined ? { ret: res.ret } : {}) };
    } catch (err) {
      if (err instanceof RouterOsTrapError) throw new RouterCommandError(err.message);
      // A lost connection (reboot, tunnel down) is lost for every user of the site.
      this.dropSite(target.siteId);
      void client.close().catch(() => undefined);
      if (err instanceof RouterOsConnectionError) throw new SiteUnreachableError('router_unreachable', err.message);
      throw new SiteUnreachableError('router_unreachable', String(err));
    }
  }

  async probe(target: SiteTarget, timeoutMs = 5000): Promise<void> {
    const where = this.resolve(target.siteId);
    if (!where) throw new SiteUnreachableError('site_offline', 'unknown site');
    let client: RouterOsClient | undefined;
    try {
      client = await RouterOsClient.connect({
        host: where.host,
        port: where.port,
        username: target.credentials.username,
        password: target.credentials.password,
        connectTimeoutMs: timeoutMs,
      });
      await client.exec('/system/identity/print', {}, { timeoutMs });
    } catch (err) {
      if (err instanceof RouterOsLoginError) throw new SiteUnreachableError('router_login_failed', String(err));
      throw new SiteUnreachableError('router_unreachable', err instanceof Error ? err.message : String(err));
    } finally {
      await client?.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map(async (c) => (await c.catch(() => undefined))?.close().catch(() => undefined)));
  }
}
