import { Inject, Injectable } from '@nestjs/common';
import {
  gatewayKey,
  newTunnelSecret,
  siteIdToTunnelUser,
  tunnelKey,
  tunnelVerifier,
  type GatewayLinkRecord,
  type RelayRequest,
  type RelayResponse,
  type TunnelRecord,
} from '@backplane/contracts';
import { SiteCredentialsRepository, TunnelEventsRepository, type SiteAccess, type TenantTx } from '@backplane/db';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { VERIFIER_KEY } from '../gateway-link/verifier-key';

/** The stable reason codes of live-call failures, in `error.details[0].message` (path `reason`). */
export type LiveFailure =
  | 'site_offline'
  | 'gateway_unreachable'
  | 'router_unreachable'
  | 'router_login_failed'
  | 'router_error'
  | 'timeout'
  | 'rate_limited'
  | 'no_router_credentials';

function failure(code: 'unavailable' | 'conflict' | 'rate_limited', reason: LiveFailure, message: string): ApiError {
  return new ApiError(code, message, [{ path: 'reason', message: reason }]);
}

/**
 * Live reads and actions on a site's router: find the gateway holding the tunnel in the
 * Redis registry, then call it over the internal link with the router's credentials
 * (decrypted here, never stored by the gateway).
 */
@Injectable()
export class LiveService {
  private readonly credentials: SiteCredentialsRepository;
  private readonly tunnelEvents = new TunnelEventsRepository();

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly verifierKey: Buffer,
  ) {
    this.credentials = new SiteCredentialsRepository(deps.keyring);
  }

  private get prefix(): string {
    return this.deps.redisPrefix;
  }

  async tunnel(t: TenantContext, siteId: string): Promise<TunnelRecord | null> {
    await this.site(t, siteId);
    const raw = await this.deps.redis.get(tunnelKey(this.prefix, siteId));
    return raw ? (JSON.parse(raw) as TunnelRecord) : null;
  }

  private async site(t: TenantContext, siteId: string): Promise<SiteAccess> {
    const row = await this.deps.db.inTenant(t.scope, (tx) => this.credentials.access(tx, siteId));
    if (!row) throw ApiError.notFound('site');
    return row;
  }

  /** New tunnel secret for the site (shown once); the gateways learn the verifier on their next sync. */
  async issueTunnelCredentials(t: TenantContext, siteId: string) {
    const secret = newTunnelSecret();
    const address = await this.deps.db.inTenant(t.scope, async (tx: TenantTx) => {
      return this.credentials.setTunnelSecret(tx, siteId, secret, tunnelVerifier(this.verifierKey, secret));
    });
    if (!address) throw ApiError.notFound('site');
    return { user: siteIdToTunnelUser(siteId), password: secret, address };
  }

  async setRouterCredentials(t: TenantContext, siteId: string, username: string, password: string): Promise<void> {
    const found = await this.deps.db.inTenant(t.scope, (tx) =>
      this.credentials.setRouterCredentials(tx, siteId, username, password),
    );
    if (!found) throw ApiError.notFound('site');
  }

  /** Newest first; `nextCursor` pages on (null on the last page). */
  async events(t: TenantContext, siteId: string, limit: number, cursor?: string) {
    await this.site(t, siteId);
    const page = await this.deps.db.inTenant(t.scope, (tx) => this.tunnelEvents.list(tx, siteId, { limit, cursor }));
    return { items: page.items.map((r) => ({ ...r, at: r.at.toISOString() })), nextCursor: page.nextCursor };
  }

  /** Where to send a call for this site, and with which credentials. */
  private async route(t: TenantContext, siteId: string) {
    const site = await this.site(t, siteId);
    if (!site.hasCredentials)
      throw failure('conflict', 'no_router_credentials', 'the site has no router API credentials yet');
    const raw = await this.deps.redis.get(tunnelKey(this.prefix, siteId));
    if (!raw) throw failure('unavailable', 'site_offline', 'the site is offline: no gateway holds its tunnel');
    const rec = JSON.parse(raw) as TunnelRecord;
    const gwRaw = await this.deps.redis.get(gatewayKey(this.prefix, rec.gatewayId));
    if (!gwRaw) throw failure('unavailable', 'gateway_unreachable', 'the gateway holding the tunnel is not reachable');
    const gw = JSON.parse(gwRaw) as GatewayLinkRecord;
    const credentials = site.credentials()!;
    return { gw, credentials };
  }

  async call(
    t: TenantContext,
    siteId: string,
    req: Omit<RelayRequest, 'credentials'>,
    timeoutMs = 20_000,
  ): Promise<RelayResponse> {
    const { gw, credentials } = await this.route(t, siteId);
    const res = await this.post(gw, siteId, 'call', { ...req, credentials }, AbortSignal.timeout(timeoutMs));
    const text = await res.text();
    if (res.ok) return JSON.parse(text) as RelayResponse;
    throw this.mapError(res.status, text);
  }

  /** A streaming command: NDJSON rows from the gateway until `signal` aborts. */
  async stream(
    t: TenantContext,
    siteId: string,
    req: Omit<RelayRequest, 'credentials'>,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const { gw, credentials } = await this.route(t, siteId);
    const res = await this.post(gw, siteId, 'stream', { ...req, credentials }, signal);
    if (!res.ok || !res.body) throw this.mapError(res.status, await res.text());
    return res.body;
  }

  private async post(
    gw: GatewayLinkRecord,
    siteId: string,
    kind: 'call' | 'stream',
    body: RelayRequest,
    signal: AbortSignal,
  ): Promise<Response> {
    try {
      return await fetch(`${gw.url}/internal/v1/sites/${siteId}/${kind}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
        throw failure('unavailable', 'timeout', 'the router did not answer in time');
      throw failure('unavailable', 'gateway_unreachable', 'the gateway holding the tunnel is not reachable');
    }
  }

  private mapError(status: number, text: string): ApiError {
    let code = '';
    let message = text.slice(0, 300);
    try {
      const b = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = b.error?.code ?? '';
      message = b.error?.message ?? message;
    } catch {
      // not JSON
    }
    switch (code) {
      case 'site_offline':
        return failure('unavailable', 'site_offline', 'the site is offline: its tunnel just went down');
      case 'rate_limited':
        return failure('rate_limited', 'rate_limited', message);
      case 'router_error':
        return new ApiError('conflict', `router refused: ${message}`, [{ path: 'reason', message: 'router_error' }]);
      case 'router_login_failed':
      case 'router_unreachable':
      case 'timeout':
        return failure('unavailable', code, message);
      default:
        return failure('unavailable', 'gateway_unreachable', `gateway answered ${status}`);
    }
  }
}
