/**
 * @backplane/gateway-link: everything that crosses the link between the control plane
 * (api, worker) and the gateways, in one place (docs/adr/0032-gateway-link-library.md):
 *
 * - schemas (zod) for every message and Redis record, and `parseAs`/`parseJsonAs` (never a cast);
 * - `TunnelRegistry`: the Redis lookup site -> gateway;
 * - `RelayClient`: relayed RouterOS calls and streams (undici pool per gateway, typed errors);
 * - `GatewayLinkClient`: the gateway's calls to the api;
 * - `commandClass`: the bounded command classes of the relay metrics.
 */
export { COMMAND_CLASSES, commandClass, type CommandClass } from './command-class';
export { LinkError, RelayClientError, type RelayFailureCode } from './errors';
export { GatewayLinkClient, type GatewayIdentity } from './link-client';
export { TunnelRegistry, type RegistryRedis, type SiteRoute } from './registry';
export { errorFrom, RelayClient, type CallOptions, type RelayClientOptions } from './relay-client';
export {
  CertificateBundle,
  EnrollResponse,
  EventsResult,
  gatewayKey,
  GatewayLinkRecord,
  HeartbeatResponse,
  isStreamError,
  LinkParseError,
  MAX_TELEMETRY_BATCH,
  parseAs,
  parseJsonAs,
  RELAY_STATUS,
  RelayErrorBody,
  RelayErrorCode,
  RelayRequest,
  RelayResponse,
  RouterCredentials,
  SiteSyncPage,
  SiteTunnelEntry,
  StreamLine,
  TelemetryBatch,
  TelemetryIngestResult,
  TelemetrySample,
  TelemetryTarget,
  TelemetryTargets,
  TunnelEvent,
  TunnelEventBatch,
  TunnelEventType,
  tunnelKey,
  TunnelRecord,
} from './schemas';
