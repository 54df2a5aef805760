export {
  startRouter,
  startRouters,
  type SimRouter,
  type StartRouterOptions,
  type StartRoutersOptions,
  type TlsOptions,
  type Ingress,
} from './router';
export { RouterState, formatId, parseId, type Item, type ChangeEvent, type ConfigSnapshot } from './model/state';
export { SafeMode, SAFE_MODE_SINCE, HISTORY_LIMIT, LOST_SESSION_MS } from './model/safe-mode';
export { inputVerdict, type Flow, type Verdict } from './control/firewall';
export {
  Engine,
  type CommandContext,
  type CommandHandler,
  type CommandRequest,
  type ReplySink,
  type Running,
  type Session,
} from './model/engine';
export { MENUS } from './model/menus';
export { RosError, POLICIES, type MenuDef, type PropDef, type Policy, type Trap } from './model/types';
export type { SimGroup, SimUser } from './model/defaults';
export { SILENT_LOGGER, type SimFaults, type SimLogger } from './api/connection';
export {
  authenticate,
  closeSession,
  md5Response,
  openSession,
  type Credentials,
  type LoginContext,
} from './model/auth';
export { ADH_CIPHERS } from './tls';
export {
  featuresOf,
  compareVersions,
  offeredVersion,
  DEFAULT_RELEASES,
  type BooleanStyle,
  type VersionFeatures,
  type ReleaseTable,
  type UpdateChannel,
} from './version';
export { RawApiClient, attrs, type Reply } from './api/raw-client';
export {
  createRouterModel,
  installScripting,
  runScript,
  schedulerIdle,
  type RouterModelOptions,
} from './script/scripting';
export type { RunOptions, RunResult, ScriptFailure } from './script/interpreter';
export { exportConfig, type ExportOptions } from './export/export';
export { resetConfiguration } from './export/reset';
export { startFleet, fleetAddress, Fleet, type FleetOptions } from './fleet/fleet';
export {
  startControlServer,
  applyFaults,
  applyClock,
  applyIngress,
  applyReleases,
  type ControlServer,
  type RouterDirectory,
} from './control/endpoint';
export { FAULT_KEYS, type RouterFaults } from './control/faults';
export { RouterServices, type ServicesOptions } from './control/services';
export { RestServer, type RestOptions } from './rest/server';
export { SimSshServer, consoleError, type SshOptions } from './ssh/server';
export { deterministicHostKey, sshFingerprint, SSH_KEYS } from './ssh/keys';
export { OvpnManager, ovpnUnavailable, type OvpnOptions } from './ovpn/manager';
export { defaultStateBase, processStateDir, sweepStale } from './state-dir';
export { renderOvpnClientConfig, CIPHERS as OVPN_CIPHERS, AUTHS as OVPN_AUTHS } from './ovpn/config';
