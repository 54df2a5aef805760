export { siteIdToTunnelUser, tunnelUserToSiteId, TunnelUserError, TUNNEL_USER_LENGTH } from './tunnel-user';
export { checkTunnelSecret, newTunnelSecret, TUNNEL_SECRET_BYTES, tunnelVerifier } from './tunnel-verifier';
export {
  gatewayKey,
  tunnelKey,
  type GatewayLinkRecord,
  type RelayError,
  type RelayErrorCode,
  type RelayRequest,
  type RelayResponse,
  type RouterCredentials,
  type SiteSyncPage,
  type SiteTunnelEntry,
  type TunnelEvent,
  type TunnelEventBatch,
  type TunnelEventType,
  type TunnelRecord,
} from './gateway-link';
