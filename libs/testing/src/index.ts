export { ensureLocalServices } from './services';
export {
  createTestDatabase,
  ensureTemplateDatabase,
  prepareScratchDatabase,
  templateName,
  testSettings,
  urlForDatabase,
  type TestDatabase,
} from './test-db';
export {
  FakeOpenVpnServer,
  parseLine as parseOpenVpnCommandLine,
  type FakeOpenVpnOptions,
  type FakeTunnel,
  type FakeTunnelInput,
  type FakeTunnelOutcome,
} from './fake-openvpn';
export {
  NetnsLab,
  addressesIn,
  ip,
  netnsMissing,
  pidsIn,
  runIn,
  stopProcess,
  tcpForward,
  tryIp,
  until,
  type NsProcess,
  type RunOptions,
  type SimulatorOptions,
  type TcpForward,
  type VethEnd,
} from './netns';
