export * from './management/client';
export * from './management/commands';
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
export {
  DEFAULT_DATA_CIPHERS,
  FFDHE2048_DH_PARAMS_PEM,
  renderManagementPasswordFile,
  renderServerConfig,
  ServerConfigError,
  type ServerConfigOptions,
} from './config/server-config';
export {
  certificateMatchesKey,
  createCertificateRequest,
  signCertificateRequest,
  type CertificateRequest,
  type IssuedCertificate,
} from './pki/pki';
export {
  createCa,
  createCrl,
  describeCertificate,
  issueServerCertificate,
  PkiError,
  verifyIssuedBy,
  type CreateCaOptions,
  type CreateCrlOptions,
  type IssueServerOptions,
  type KeyAlgorithm,
  type PemCertificate,
  type RevokedCertificate,
} from './pki/pki';
export { parseOpenVpnLogLine, type OpenVpnLogEvent, type OpenVpnLogKind } from './supervisor/log';
export {
  OpenVpnSupervisor,
  type OpenVpnSupervisorOptions,
  type SupervisorExit,
  type SupervisorState,
  LogTail,
} from './supervisor/supervisor';
export {
  FakeOpenVpnServer,
  parseLine as parseOpenVpnCommandLine,
  type FakeOpenVpnOptions,
  type FakeTunnel,
  type FakeTunnelInput,
  type FakeTunnelOutcome,
} from './fake/server';
