/**
 * @backplane/routeros: the RouterOS API (8728 / API-SSL 8729) codec and client.
 *
 *   const ros = await RouterOsClient.connect({ host, username, password });   // login auto-detected
 *   const rows = await ros.print('/interface', {
 *     where: where('type', 'ether').or(where('type', 'vlan')),
 *     proplist: ['name', 'type', 'disabled'],
 *   });
 *   parseBool(rows[0]?.['disabled']);                     // true/false (v7) and yes/no (v6)
 *   const { ret: id } = await ros.exec('/ip/address/add', { address: '10.0.0.1/24', interface: 'ether1' });
 *   for await (const row of ros.stream('/interface/monitor-traffic', { interface: 'ether1' }, { signal })) {
 *     // break, return() or the signal send /cancel and wait for the router to confirm
 *   }
 *   await ros.close();
 *
 * Errors: RouterOsTrapError (`!trap`: category + message, the connection stays usable),
 * RouterOsLoginError, RouterOsTimeoutError (the command was cancelled on the router),
 * RouterOsAbortError, RouterOsConnectionError with a `code` ('refused', 'reset',
 * 'connect-timeout', 'keepalive-timeout', 'tls', 'protocol', 'fatal', 'closed', ...), and
 * RouterOsFatalError for `!fatal`. Rows are UTF-8 strings; `rawValue(row, name)` gives bytes.
 */
export * from './codec';
export {
  ANONYMOUS_DH_CIPHERS,
  RouterOsClient,
  type AttributeValue,
  type Attributes,
  type CommandOptions,
  type CommandResult,
  type LoginMethod,
  type RouterOsClientOptions,
  type RouterOsClientStats,
  type RouterOsStream,
  type RouterOsTlsOptions,
  type StreamOptions,
} from './client';
export * from './errors';
export { challengeResponse } from './login';
export {
  allOf,
  anyOf,
  has,
  lacks,
  not,
  Query,
  rawQuery,
  where,
  type QueryNode,
  type QueryOperator,
  type QueryValue,
} from './query';
export { boolOr, parseBool, rawValue, rowOf, type Row } from './values';
export {
  bool,
  bytesOf,
  commandWords,
  duration,
  escapeString,
  id,
  ip,
  menuPath,
  num,
  propertyName,
  quote,
  ScriptBuildError,
  ScriptFragment,
  value as scriptValue,
  variable,
  type ScriptListItem,
  type ScriptValue,
} from './script/literal';
export {
  cmd,
  concat,
  cond,
  find,
  Script,
  sub,
  test as scriptTest,
  type LogLevel,
  type ScriptArgs,
} from './script/builder';
export {
  ADMIN_GROUP,
  ADMIN_POLICY,
  ADMIN_USER,
  adminPassword,
  API_GROUP,
  API_POLICY,
  elevatedCredentials,
  POLL_POLICY,
  GATEWAY_TUNNEL_ADDRESS,
  onboardingScript,
  POLL_SCHEDULER,
  pollScript,
  recoveryScript,
  tunnelObjects,
  type OnboardingParams,
  type TunnelParams,
} from './script/onboarding';
export {
  RouterOsRestAuthError,
  RouterOsRestClient,
  RouterOsRestError,
  RouterOsRestNotFoundError,
  type RestCommandOptions,
  type RestPrintOptions,
  type RestRequestOptions,
  type RestRow,
  type RestValue,
  type RouterOsRestClientOptions,
  type RouterOsRestTlsOptions,
} from './rest/client';
export { RouterOsSshClient, type RouterOsSshClientOptions, type SshExecResult } from './ssh/client';
export {
  FileHostKeyStore,
  MemoryHostKeyStore,
  RouterOsHostKeyError,
  sshKeyFingerprint,
  type HostKeyStore,
} from './ssh/host-keys';
export {
  CONFIRM_POLICY,
  CONFIRM_SCHEDULER_PREFIX,
  confirmNames,
  confirmSchedulerAttributes,
  confirmSchedulerScript,
  REVERT_FILE_PREFIX,
  revertDoneMessage,
  revertHead,
  importPartsScript,
  revertIndex,
  revertOnEvent,
  revertPartName,
  scriptPartName,
  revertTail,
  splitScript,
  type ConfirmNames,
} from './script/commit-confirm';
