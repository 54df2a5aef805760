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
