/**
 * @backplane/jobs: configuration jobs (kinds, payload schemas, the jobs table and the
 * BullMQ queue they run on). The router scripts of onboarding and tunnel recovery live in
 * @backplane/routeros (`script/onboarding.ts`).
 *
 *   const q = new JobQueue({ connection: connectionFromUrl(redisUrl), prefix: 'bp' });
 *   const { row } = await db.inTenant(scope, (tx) => jobsRepo.create(tx, { siteId, kind: 'backup', ... }));
 *   await q.add({ jobId: row.id, tenantId, siteId, kind: row.kind });
 */
export {
  DesiredState,
  JOB_KINDS,
  JOB_MIN_ROLE,
  BulkJobRequest,
  RolloutRequest,
  CONFIRM_WINDOW,
  JOB_PAYLOADS,
  JobRequest,
  JOB_STATES,
  JOBS_QUEUE,
  parsePayload,
  TERMINAL_STATES,
  type JobKind,
  type JobPayload,
  type JobState,
  type QueuedJob,
} from './names';
export { connectionFromUrl, JobQueue, type QueueConnection } from './queue';
export {
  deterministicId,
  jobsRepo,
  type JobRef,
  type JobRow,
  type JobStep,
  type NewJob,
  type Requester,
  type RouterWrite,
  type StepState,
} from './store';
export { backupHash, exportWithoutHeader } from './backup';
export {
  comparableExport,
  exportBlocks,
  exportDifferences,
  isManagement,
  restoreScript,
  type ExportBlock,
  type KeptManagement,
  type ManagementNames,
} from './restore';
export { jobProgressEvent } from './events';
export {
  ADMIN_ONLY_MENUS,
  commandPolicy,
  desiredStatePolicy,
  isSecretAttribute,
  jobRequestPolicy,
  READ_VERBS,
  REDACTED,
  redactSecrets,
  redactSecretText,
  REFUSED_COMMANDS,
  SECRET_ATTRIBUTES,
  type CommandDecision,
  type PolicyRole,
} from './command-policy';
export {
  addressContains,
  predictLockout,
  predictLockouts,
  touchesManagement,
  ruleDropsManagement,
  type LockoutRisk,
  type ManagementPath,
  type ProposedChange,
} from './lockout';
export {
  compareRouterOsVersions,
  effectiveFirmwarePolicy,
  ROUTEROS_VERSION,
  upgradeDecision,
  type EffectiveFirmware,
  type UpgradeDecision,
} from './firmware';
export {
  allowedFailures,
  CheckCommand,
  gateResult,
  haltReason,
  planWaves,
  rolloutProgress,
  holdsForWindows,
  ROLLOUT_STATES,
  RolloutGates,
  WAVE_STATES,
  WavesSpec,
  type GateFailure,
  type GateResult,
  type RolloutState,
  type WaveLike,
  type WaveState,
} from './rollout';
export {
  formatClock,
  isTimezone,
  parseClock,
  windowState,
  zonedToInstant,
  type WeeklyWindow,
  type WindowState,
} from './windows';
