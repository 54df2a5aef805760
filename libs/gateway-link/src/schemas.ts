import type { TelemetrySample as TelemetrySampleShape } from '@backplane/contracts';
import { z } from 'zod';

/**
 * Every message crossing a process boundary between the control plane (api, worker) and the
 * gateways, as zod schemas; the types are inferred from them. See docs/adr/0032-gateway-link-library.md.
 *
 * - Gateway -> api, bearer = the gateway credential (`bpg_...`), client: {@link GatewayLinkClient}
 *   `POST /api/v1/gateway/enroll`, `POST /api/v1/gateway/heartbeat`, `POST /api/v1/gateway/certificate`,
 *   `GET  /api/v1/gateway/sites?after=<rev>&limit=N`  verifier deltas ({@link SiteSyncPage})
 *   `POST /api/v1/gateway/events`                     tunnel events ({@link TunnelEventBatch})
 *   `GET  /api/v1/gateway/telemetry/targets`, `POST /api/v1/gateway/telemetry`
 * - Gateway -> Redis: the tunnel registry ({@link TunnelRecord}, key per site with a TTL)
 *   and the gateway's own link record ({@link GatewayLinkRecord}); read by {@link TunnelRegistry}.
 * - Api/worker -> gateway, bearer = the link token from {@link GatewayLinkRecord}, client: {@link RelayClient}
 *   `POST <url>/internal/v1/sites/<id>/call`    one RouterOS command ({@link RelayRequest})
 *   `POST <url>/internal/v1/sites/<id>/stream`  NDJSON rows ({@link StreamLine}) until the caller disconnects
 */

// ---- relay (api/worker -> gateway) ----------------------------------------------------------

/** Router API credentials the api hands the gateway with each call (never stored by the gateway). */
export const RouterCredentials = z.strictObject({
  username: z.string().min(1).max(100),
  password: z.string().max(200),
  /** Default 8728. */
  port: z.number().int().min(1).max(65535).optional(),
});
export type RouterCredentials = z.infer<typeof RouterCredentials>;

/** The body of `/call` and `/stream`; the gateway refuses anything else (400 `bad_request`). */
export const RelayRequest = z.strictObject({
  credentials: RouterCredentials,
  /** e.g. `/interface/print`. */
  command: z.string().regex(/^(\/[a-z0-9-]+)+$/, 'a RouterOS command path like /interface/print'),
  attributes: z.record(z.string().regex(/^[a-z0-9.-]+$/), z.string().max(10_000)).optional(),
  proplist: z
    .array(z.string().regex(/^[a-z0-9.-]+$/))
    .max(100)
    .optional(),
  timeoutMs: z.number().int().min(100).max(120_000).optional(),
});
export type RelayRequest = z.infer<typeof RelayRequest>;

export const RelayResponse = z.object({
  rows: z.array(z.record(z.string(), z.string())),
  ret: z.string().optional(),
});
export type RelayResponse = z.infer<typeof RelayResponse>;

/** Error codes the relay returns (HTTP status in {@link RELAY_STATUS}). */
export const RelayErrorCode = z.enum([
  'site_offline', // 409: no tunnel for this site on this gateway
  'router_unreachable', // 502: tunnel up, API port does not answer
  'router_login_failed', // 502
  'router_error', // 502: !trap
  'timeout', // 504
  'rate_limited', // 429
  'bad_request', // 400
]);
export type RelayErrorCode = z.infer<typeof RelayErrorCode>;

export const RELAY_STATUS: Readonly<Record<RelayErrorCode, number>> = {
  site_offline: 409,
  router_unreachable: 502,
  router_login_failed: 502,
  router_error: 502,
  timeout: 504,
  rate_limited: 429,
  bad_request: 400,
};

/** Any error body the gateway sends (relay codes, `unauthorized`, `gateway_stopping`). */
export const RelayErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type RelayErrorBody = z.infer<typeof RelayErrorBody>;

/** One NDJSON line of a relayed stream: a row, or the error that ended it. */
export const StreamLine = z.union([RelayErrorBody, z.record(z.string(), z.string())]);
export type StreamLine = z.infer<typeof StreamLine>;

/** True for the line that ends a stream with an error (rows hold strings only). */
export function isStreamError(line: StreamLine): line is RelayErrorBody {
  return typeof line['error'] === 'object';
}

// ---- registry records (gateway -> Redis -> api/worker) --------------------------------------

/** Redis value of `<prefix>tunnel:<siteId>`: who holds the site's tunnel right now. */
export const TunnelRecord = z.object({
  siteId: z.string(),
  gatewayId: z.string(),
  regionSlug: z.string(),
  address: z.string(),
  sourceIp: z.string(),
  connectedSince: z.string(),
  bytesIn: z.number(),
  bytesOut: z.number(),
  /** TCP connect time to the router's API port over the tunnel, ms (null before the first probe or when it failed). */
  latencyMs: z.number().nullable(),
  updatedAt: z.string(),
});
export type TunnelRecord = z.infer<typeof TunnelRecord>;

/** Redis value of `<prefix>gateway:<gatewayId>`: how api replicas reach a gateway. */
export const GatewayLinkRecord = z.object({
  gatewayId: z.string(),
  url: z.url(),
  /** Bearer token the gateway accepts on its internal routes (rotates at every gateway start). */
  token: z.string().min(1),
  updatedAt: z.string(),
});
export type GatewayLinkRecord = z.infer<typeof GatewayLinkRecord>;

export const tunnelKey = (prefix: string, siteId: string): string => `${prefix}tunnel:${siteId}`;
export const gatewayKey = (prefix: string, gatewayId: string): string => `${prefix}gateway:${gatewayId}`;

// ---- gateway -> api -------------------------------------------------------------------------

/** One site as the gateway needs it to admit its tunnel. */
export const SiteTunnelEntry = z.object({
  siteId: z.uuid(),
  /** Fixed management address in 100.64.0.0/10. */
  address: z.string(),
  /** Hex HMAC-SHA256 verifier of the tunnel secret; null when none was issued yet. */
  verifier: z.string().nullable(),
  /** False when the site is deleted or its tenant is disabled: deny. */
  active: z.boolean(),
  /** Monotonic revision of this entry (the sync cursor). */
  rev: z.number(),
});
export type SiteTunnelEntry = z.infer<typeof SiteTunnelEntry>;

export const SiteSyncPage = z.object({
  /** Base64 verifier key of the deployment (HMAC key). */
  verifierKey: z.string(),
  items: z.array(SiteTunnelEntry),
  /** Cursor for the next request (`after=`). */
  next: z.number(),
  /** More entries wait after `next`. */
  more: z.boolean(),
});
export type SiteSyncPage = z.infer<typeof SiteSyncPage>;

export const TunnelEventType = z.enum(['connect', 'auth', 'disconnect']);
export type TunnelEventType = z.infer<typeof TunnelEventType>;

export const TunnelEvent = z.strictObject({
  type: TunnelEventType,
  /** Undefined when the user name did not decode to a site id (still worth logging). */
  siteId: z.uuid().optional(),
  gatewayId: z.string().optional(),
  sourceIp: z.string().max(64),
  at: z.iso.datetime(),
  /** For `auth`. */
  accepted: z.boolean().optional(),
  /** Why it was denied (`unknown-site`, `bad-secret`, `site-disabled`, `rate-limited`, `bad-user`) or why it ended. */
  reason: z.string().max(200).optional(),
  bytesIn: z.number().int().min(0).optional(),
  bytesOut: z.number().int().min(0).optional(),
  durationSeconds: z.number().int().min(0).optional(),
});
export type TunnelEvent = z.infer<typeof TunnelEvent>;

export const TunnelEventBatch = z.strictObject({ events: z.array(TunnelEvent).max(1000) });
export type TunnelEventBatch = z.infer<typeof TunnelEventBatch>;

export const EnrollResponse = z.object({ gateway: z.object({ id: z.string() }), credential: z.string().min(1) });
export type EnrollResponse = z.infer<typeof EnrollResponse>;

export const HeartbeatResponse = z.object({ id: z.string(), regionId: z.string() });
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

/** What the control plane answers a certificate request with (PEM throughout). */
export const CertificateBundle = z.object({
  certificatePem: z.string(),
  caPem: z.string(),
  crlPem: z.string(),
  serialNumber: z.string(),
  notAfter: z.string(),
});
export type CertificateBundle = z.infer<typeof CertificateBundle>;

export const EventsResult = z.object({ stored: z.number() });

// ---- telemetry (gateway <-> api) ------------------------------------------------------------

/** Largest batch a gateway may send (the gateway flushes at this size). */
export const MAX_TELEMETRY_BATCH = 500;

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const bps = z.number().min(0).max(1e13);

/** One telemetry poll of a site by its gateway (the type lives in @backplane/contracts: the portal shows it). */
export const TelemetrySample: z.ZodType<TelemetrySampleShape> = z
  .strictObject({
    siteId: z.uuid(),
    at: z.iso.datetime({ offset: true }),
    cpuLoad: z.number().min(0).max(100).nullable(),
    memoryUsed: count.nullable(),
    memoryTotal: count.nullable(),
    uptimeSeconds: count.nullable(),
    tunnelBytesIn: count.nullable(),
    tunnelBytesOut: count.nullable(),
    latencyMs: z.number().min(0).max(600_000).nullable(),
    temperatureC: z.number().min(-100).max(300).nullable().optional(),
    interfacesDown: z.number().int().min(0).max(100_000).nullable().optional(),
    interfaces: z
      .array(z.strictObject({ name: z.string().min(1).max(128), rxBps: bps, txBps: bps }))
      .max(512)
      .refine((a) => new Set(a.map((i) => i.name)).size === a.length, 'interface names must be unique'),
  })
  .refine((s) => s.memoryUsed === null || s.memoryTotal === null || s.memoryUsed <= s.memoryTotal, {
    message: 'memoryUsed exceeds memoryTotal',
    path: ['memoryUsed'],
  });

/**
 * `POST /api/v1/gateway/telemetry` (gateway credential): a batch of samples of sites whose
 * tunnel the gateway holds (samples of other sites are ignored, a sample sent twice is stored once).
 */
export const TelemetryBatch = z.strictObject({ samples: z.array(TelemetrySample).min(1).max(MAX_TELEMETRY_BATCH) });
export type TelemetryBatch = z.infer<typeof TelemetryBatch>;

export const TelemetryIngestResult = z.object({
  stored: z.number(),
  /** Not stored: site not held by this gateway, sample outside the accepted time window, or a duplicate. */
  ignored: z.number(),
});
export type TelemetryIngestResult = z.infer<typeof TelemetryIngestResult>;

/** One site a gateway polls, with the router API credentials to poll it (kept in memory only). */
export const TelemetryTarget = z.object({
  siteId: z.uuid(),
  credentials: z.object({ username: z.string(), password: z.string(), port: z.number().int().optional() }),
});
export type TelemetryTarget = z.infer<typeof TelemetryTarget>;

/** `GET /api/v1/gateway/telemetry/targets` (gateway credential): the online sites on this gateway. */
export const TelemetryTargets = z.object({ targets: z.array(TelemetryTarget) });
export type TelemetryTargets = z.infer<typeof TelemetryTargets>;

// ---- parsing --------------------------------------------------------------------------------

/** A value crossing a process boundary did not match its schema (or was not JSON). */
export class LinkParseError extends Error {
  constructor(
    readonly what: string,
    readonly detail: string,
  ) {
    super(`${what}: ${detail}`);
    this.name = 'LinkParseError';
  }
}

function describe(error: z.ZodError): string {
  const i = error.issues[0];
  if (!i) return 'invalid';
  return `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`;
}

/** `schema.parse` that throws a {@link LinkParseError} naming `what` and the first bad field. */
export function parseAs<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new LinkParseError(what, describe(r.error));
  return r.data;
}

/** JSON text -> value of `schema`, or a {@link LinkParseError} (never a bare SyntaxError, never a cast). */
export function parseJsonAs<S extends z.ZodType>(schema: S, text: string, what: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new LinkParseError(what, `not JSON (${text.length > 60 ? `${text.slice(0, 60)}…` : text || 'empty'})`);
  }
  return parseAs(schema, value, what);
}
