/**
 * Messages between the control plane and the gateways (see docs/adr/0020-gateway-link.md).
 *
 * - Gateway -> api, bearer = the gateway credential (`bpg_...`):
 *   `GET  /api/v1/gateway/sites?after=<rev>&limit=N`  verifier deltas ({@link SiteSyncPage})
 *   `POST /api/v1/gateway/events`                     tunnel events ({@link TunnelEventBatch})
 * - Gateway -> Redis: the tunnel registry ({@link TunnelRecord}, key per site with a TTL)
 *   and the gateway's own link record ({@link GatewayLinkRecord}).
 * - Api -> gateway, bearer = the link token from {@link GatewayLinkRecord}:
 *   `POST <url>/internal/v1/sites/<id>/call`    one RouterOS command ({@link RelayRequest})
 *   `POST <url>/internal/v1/sites/<id>/stream`  NDJSON rows until the caller disconnects
 */

/** One site as the gateway needs it to admit its tunnel. */
export interface SiteTunnelEntry {
  readonly siteId: string;
  /** Fixed management address in 100.64.0.0/10. */
  readonly address: string;
  /** Hex HMAC-SHA256 verifier of the tunnel secret; null when none was issued yet. */
  readonly verifier: string | null;
  /** False when the site is deleted or its tenant is disabled: deny. */
  readonly active: boolean;
  /** Monotonic revision of this entry (the sync cursor). */
  readonly rev: number;
}

export interface SiteSyncPage {
  /** Base64 verifier key of the deployment (HMAC key). */
  readonly verifierKey: string;
  readonly items: readonly SiteTunnelEntry[];
  /** Cursor for the next request (`after=`). */
  readonly next: number;
  /** More entries wait after `next`. */
  readonly more: boolean;
}

export type TunnelEventType = 'connect' | 'auth' | 'disconnect';

export interface TunnelEvent {
  readonly type: TunnelEventType;
  /** Undefined when the user name did not decode to a site id (still worth logging). */
  readonly siteId?: string;
  readonly gatewayId: string;
  readonly sourceIp: string;
  readonly at: string;
  /** For `auth`. */
  readonly accepted?: boolean;
  /** Why it was denied (`unknown-site`, `bad-secret`, `site-disabled`, `rate-limited`, `bad-user`) or why it ended. */
  readonly reason?: string;
  readonly bytesIn?: number;
  readonly bytesOut?: number;
  readonly durationSeconds?: number;
}

export interface TunnelEventBatch {
  readonly events: readonly TunnelEvent[];
}

/** Redis value of `<prefix>tunnel:<siteId>`: who holds the site's tunnel right now. */
export interface TunnelRecord {
  readonly siteId: string;
  readonly gatewayId: string;
  readonly regionSlug: string;
  readonly address: string;
  readonly sourceIp: string;
  readonly connectedSince: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** TCP connect time to the router's API port over the tunnel, ms (null before the first probe or when it failed). */
  readonly latencyMs: number | null;
  readonly updatedAt: string;
}

/** Redis value of `<prefix>gateway:<gatewayId>`: how api replicas reach a gateway. */
export interface GatewayLinkRecord {
  readonly gatewayId: string;
  readonly url: string;
  /** Bearer token the gateway accepts on its internal routes (rotates at every gateway start). */
  readonly token: string;
  readonly updatedAt: string;
}

export const tunnelKey = (prefix: string, siteId: string): string => `${prefix}tunnel:${siteId}`;
export const gatewayKey = (prefix: string, gatewayId: string): string => `${prefix}gateway:${gatewayId}`;

/** Router API credentials the api hands the gateway with each call (never stored by the gateway). */
export interface RouterCredentials {
  readonly username: string;
  readonly password: string;
  /** Default 8728. */
  readonly port?: number;
}

export interface RelayRequest {
  readonly credentials: RouterCredentials;
  /** e.g. `/interface/print`. */
  readonly command: string;
  readonly attributes?: Readonly<Record<string, string>>;
  readonly proplist?: readonly string[];
  readonly timeoutMs?: number;
}

export interface RelayResponse {
  readonly rows: readonly Record<string, string>[];
  readonly ret?: string;
}

/** Error codes the relay returns (HTTP status in brackets); the api maps them to its own. */
export type RelayErrorCode =
  | 'site_offline' // 409: no tunnel for this site on this gateway
  | 'router_unreachable' // 502: tunnel up, API port does not answer
  | 'router_login_failed' // 502
  | 'router_error' // 502: !trap
  | 'timeout' // 504
  | 'rate_limited' // 429
  | 'bad_request'; // 400

export interface RelayError {
  readonly error: { readonly code: RelayErrorCode; readonly message: string };
}
