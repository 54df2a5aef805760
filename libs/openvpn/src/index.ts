export {
  ManagementClient,
  ManagementError,
  type ManagementClientOptions,
  type ManagementClientState,
  type ManagementClientStats,
  type ReconnectOptions,
} from './management/client';
export {
  assertId,
  assertSafeText,
  bytecountCommand,
  clientAuthCommand,
  clientAuthNtCommand,
  clientDenyCommand,
  clientKillCommand,
  killCommand,
  ManagementCommandError,
  quoteArg,
} from './management/commands';
export {
  ManagementProtocol,
  type ClientEnv,
  type ManagementEvent,
  type ManagementEventType,
  type ProtocolCounters,
  type ProtocolOptions,
  type ProtocolSink,
  type Reply,
  type ReplyShape,
} from './management/protocol';
export {
  parseLoadStats,
  parseStatus3,
  type LoadStats,
  type ServerStatus,
  type StatusClient,
  type StatusRoute,
} from './management/status';
