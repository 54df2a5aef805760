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
import type { TenantTx } from '@backplane/db';
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

interface SiteCreds {
  router_username: string | null;
  router_password_enc: string | null;
}

/**
 * Live reads and actions on a site's router: find the gateway holding the tunnel in the
 * Redis registry, then call it over the internal link with the router's credentials
 * (decrypted here, never stored by the gateway).
 */
@Injectable()
export class LiveService implements OnModuleDestroy {
  private readonly relay: RelayClient;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly verifierKey: Buffer,
  ) {
    this.relay = new RelayClient({ registry: new TunnelRegistry(deps.redis, deps.redisPrefix) });
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

  private async site(t: TenantContext, siteId: string): Promise<SiteCreds & { mgmt: string }> {
    const [row] = await this.deps.db.inTenant(t.scope, (tx) =>
      tx.query<SiteCreds & { mgmt: string }>(
        `SELECT router_username, router_password_enc, host(mgmt_address) AS mgmt FROM sites WHERE id = $1 AND deleted_at IS NULL`,
        [siteId],
      ),
    );
    if (!row) throw ApiError.notFound('site');
    return row;
  }

  /** New tunnel secret for the site (shown once); the gateways learn the verifier on their next sync. */
  async issueTunnelCredentials(t: TenantContext, siteId: string) {
    const secret = newTunnelSecret();
    const address = await this.deps.db.inTenant(t.scope, async (tx: TenantTx) => {
      const rows = await tx.query<{ mgmt: string }>(
        `UPDATE sites SET tunnel_secret_enc = $2, tunnel_verifier = $3, updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL RETURNING host(mgmt_address) AS mgmt`,
        [siteId, this.deps.keyring.encrypt(secret, `site:${siteId}:tunnel`), tunnelVerifier(this.verifierKey, secret)],
      );
      return rows[0]?.mgmt;
    });
    if (!address) throw ApiError.notFound('site');
    return { user: siteIdToTunnelUser(siteId), password: secret, address };
  }

  async setRouterCredentials(t: TenantContext, siteId: string, username: string, password: string): Promise<void> {
    const rows = await this.deps.db.inTenant(t.scope, (tx) =>
      tx.query(
        `UPDATE sites SET router_username = $2, router_password_enc = $3, updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
        [siteId, username, this.deps.keyring.encrypt(password, `site:${siteId}:router-password`)],
      ),
    );
    if (!rows.length) throw ApiError.notFound('site');
  }

  async events(t: TenantContext, siteId: string, limit: number) {
    await this.site(t, siteId);
    const rows = await this.deps.db.inTenant(t.scope, (tx) =>
      tx.query(
        `SELECT id::text AS id, type, accepted, reason, source_ip AS "sourceIp", gateway_id AS "gatewayId",
                bytes_in::float8 AS "bytesIn", bytes_out::float8 AS "bytesOut", duration_seconds AS "durationSeconds", at
           FROM tunnel_events WHERE site_id = $1 ORDER BY id DESC LIMIT $2`,
        [siteId, limit],
      ),
    );
    return { items: rows.map((r) => ({ ...r, at: (r['at'] as Date).toISOString() })) };
  }

  /** The router's API credentials (decrypted here, never stored by the gateway). */
  private async credentials(t: TenantContext, siteId: string) {
    const site = await this.site(t, siteId);
    if (!site.router_username || !site.router_password_enc)
      throw failure('conflict', 'no_router_credentials', 'the site has no router API credentials yet');
    return {
      username: site.router_username,
      password: this.deps.keyring.decryptText(site.router_password_enc, `site:${siteId}:router-password`),
    };
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
