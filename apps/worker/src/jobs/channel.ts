import {
  gatewayKey,
  tunnelKey,
  type GatewayLinkRecord,
  type RelayResponse,
  type RouterCredentials,
  type TunnelRecord,
} from '@backplane/contracts';
import { RouterOsClient, RouterOsConnectionError, RouterOsTrapError } from '@backplane/routeros';
import type { Redis } from 'ioredis';

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
export class RouterCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RouterCommandError';
  }
}

export interface SiteTarget {
  readonly siteId: string;
  readonly credentials: RouterCredentials;
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
}

/**
 * The production path, the same as the api's live calls: the tunnel registry in Redis says
 * which gateway holds the site; the gateway relays one RouterOS command over the tunnel.
 */
export class RelayChannel implements RouterChannel {
  readonly tunnels = true;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async connectedSince(siteId: string): Promise<Date | undefined> {
    const raw = await this.redis.get(tunnelKey(this.prefix, siteId));
    return raw ? new Date((JSON.parse(raw) as TunnelRecord).connectedSince) : undefined;
  }

  async call(
    target: SiteTarget,
    command: string,
    attributes: Readonly<Record<string, string>> = {},
    timeoutMs = 60_000,
  ): Promise<RelayResponse> {
    const raw = await this.redis.get(tunnelKey(this.prefix, target.siteId));
    if (!raw) throw new SiteUnreachableError('site_offline', 'no gateway holds the tunnel of this site');
    const rec = JSON.parse(raw) as TunnelRecord;
    const gwRaw = await this.redis.get(gatewayKey(this.prefix, rec.gatewayId));
    if (!gwRaw) throw new SiteUnreachableError('gateway_unreachable', 'the gateway holding the tunnel is gone');
    const gw = JSON.parse(gwRaw) as GatewayLinkRecord;
    let res: Response;
    try {
      res = await fetch(`${gw.url}/internal/v1/sites/${target.siteId}/call`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ credentials: target.credentials, command, attributes, timeoutMs }),
        signal: AbortSignal.timeout(timeoutMs + 5000),
      });
    } catch (err) {
      throw new SiteUnreachableError('gateway_unreachable', `gateway call failed: ${String(err)}`);
    }
    const text = await res.text();
    if (res.ok) return JSON.parse(text) as RelayResponse;
    let code = '';
    let message = text.slice(0, 300);
    try {
      const b = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = b.error?.code ?? '';
      message = b.error?.message ?? message;
    } catch {
      // not JSON
    }
    if (code === 'router_error' || code === 'bad_request') throw new RouterCommandError(message);
    throw new SiteUnreachableError(code || `http_${res.status}`, message);
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

  private client(target: SiteTarget): Promise<RouterOsClient> {
    let c = this.clients.get(target.siteId);
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
      this.clients.set(target.siteId, c);
      c.catch(() => this.clients.delete(target.siteId));
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
    let client: RouterOsClient;
    try {
      client = await this.client(target);
    } catch (err) {
      this.clients.delete(target.siteId);
      if (err instanceof SiteUnreachableError) throw err;
      throw new SiteUnreachableError('router_unreachable', String(err));
    }
    try {
      const res = await client.exec(command, attributes, { timeoutMs });
      return { rows: res.rows, ...(res.ret !== undefined ? { ret: res.ret } : {}) };
    } catch (err) {
      if (err instanceof RouterOsTrapError) throw new RouterCommandError(err.message);
      this.clients.delete(target.siteId);
      void client.close().catch(() => undefined);
      if (err instanceof RouterOsConnectionError) throw new SiteUnreachableError('router_unreachable', err.message);
      throw new SiteUnreachableError('router_unreachable', String(err));
    }
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(all.map(async (c) => (await c.catch(() => undefined))?.close().catch(() => undefined)));
  }
}
