import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { newTunnelSecret, siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import {
  RelayClient,
  RelayClientError,
  TunnelRegistry,
  type RelayRequest,
  type RelayResponse,
  type TunnelRecord,
} from '@backplane/gateway-link';
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
export class LiveService implements OnModuleDestroy {
  private readonly relay: RelayClient;
  private readonly siteCredentials: SiteCredentialsRepository;
  private readonly tunnelEvents = new TunnelEventsRepository();

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly verifierKey: Buffer,
  ) {
    this.relay = new RelayClient({ registry: new TunnelRegistry(deps.redis, deps.redisPrefix) });
    this.siteCredentials = new SiteCredentialsRepository(deps.keyring);
  }

  async onModuleDestroy(): Promise<void> {
    await this.relay.close();
  }

  async tunnel(t: TenantContext, siteId: string): Promise<TunnelRecord | null> {
    await this.site(t, siteId);
    try {
      return (await this.relay.registry.tunnel(siteId)) ?? null;
    } catch (err) {
      throw failure('unavailable', 'gateway_unreachable', (err as Error).message);
    }
  }

  private async site(t: TenantContext, siteId: string): Promise<SiteAccess> {
    const row = await this.deps.db.inTenant(t.scope, (tx) => this.siteCredentials.access(tx, siteId));
    if (!row) throw ApiError.notFound('site');
    return row;
  }

  /** New tunnel secret for the site (shown once); the gateways learn the verifier on their next sync. */
  async issueTunnelCredentials(t: TenantContext, siteId: string) {
    const secret = newTunnelSecret();
    const address = await this.deps.db.inTenant(t.scope, async (tx: TenantTx) => {
      return this.siteCredentials.setTunnelSecret(tx, siteId, secret, tunnelVerifier(this.verifierKey, secret));
    });
    if (!address) throw ApiError.notFound('site');
    return { user: siteIdToTunnelUser(siteId), password: secret, address };
  }

  async setRouterCredentials(t: TenantContext, siteId: string, username: string, password: string): Promise<void> {
    const found = await this.deps.db.inTenant(t.scope, (tx) =>
      this.siteCredentials.setRouterCredentials(tx, siteId, username, password),
    );
    if (!found) throw ApiError.notFound('site');
  }

  /** Newest first; `nextCursor` pages on (null on the last page). */
  async events(t: TenantContext, siteId: string, limit: number, cursor?: string) {
    await this.site(t, siteId);
    const page = await this.deps.db.inTenant(t.scope, (tx) => this.tunnelEvents.list(tx, siteId, { limit, cursor }));
    return { items: page.items.map((r) => ({ ...r, at: r.at.toISOString() })), nextCursor: page.nextCursor };
  }

  /** The router's API credentials (decrypted here, never stored by the gateway). */
  private async credentials(t: TenantContext, siteId: string) {
    const site = await this.site(t, siteId);
    if (!site.hasCredentials)
      throw failure('conflict', 'no_router_credentials', 'the site has no router API credentials yet');
    return site.credentials()!;
  }

  async call(
    t: TenantContext,
    siteId: string,
    req: Omit<RelayRequest, 'credentials'>,
    timeoutMs = 20_000,
  ): Promise<RelayResponse> {
    const credentials = await this.credentials(t, siteId);
    try {
      return await this.relay.call(siteId, { ...req, credentials }, { timeoutMs });
    } catch (err) {
      throw toApiError(err);
    }
  }

  /** A streaming command: NDJSON rows from the gateway until `signal` aborts. */
  async stream(
    t: TenantContext,
    siteId: string,
    req: Omit<RelayRequest, 'credentials'>,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const credentials = await this.credentials(t, siteId);
    try {
      return await this.relay.stream(siteId, { ...req, credentials }, signal);
    } catch (err) {
      throw toApiError(err);
    }
  }
}

/** The relay client's typed failure -> the api's error with its stable `reason`. */
function toApiError(err: unknown): unknown {
  if (!(err instanceof RelayClientError)) return err;
  switch (err.code) {
    case 'site_offline':
      return failure(
        'unavailable',
        'site_offline',
        err.status ? 'the site is offline: its tunnel just went down' : err.message,
      );
    case 'rate_limited':
      return failure('rate_limited', 'rate_limited', err.message);
    case 'router_error':
      return new ApiError('conflict', `router refused: ${err.message}`, [{ path: 'reason', message: 'router_error' }]);
    case 'router_login_failed':
    case 'router_unreachable':
    case 'timeout':
      return failure('unavailable', err.code, err.message);
    case 'aborted':
      return failure('unavailable', 'timeout', 'the router did not answer in time');
    default:
      return failure('unavailable', 'gateway_unreachable', err.message);
  }
}
