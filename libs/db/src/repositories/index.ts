export { ApiKeysRepository, type ApiKeyAuthRow, type ApiKeyRow } from './api-keys.repository';
export {
  AuditRepository,
  type ActorType,
  type AuditEntryInput,
  type AuditFilter,
  type AuditRow,
} from './audit.repository';
export { InvitationsRepository, type InvitationRow } from './invitations.repository';
export {
  decodeCursor,
  decodeIdCursor,
  encodeCursor,
  encodeIdCursor,
  InvalidCursorError,
  toIdPage,
  toPage,
  type Keyset,
  type Page,
  type PageRequest,
} from './pagination';
export { PkiRepository, type AuthorityRow, type GatewayCertificateRow } from './pki.repository';
export { RegionsRepository, type GatewayRow, type RegionInput, type RegionRow } from './regions.repository';
export { SitesRepository, type SiteFilter, type SiteInput, type SiteRow } from './sites.repository';
export { MembershipsRepository, TenantsRepository, type MemberRow, type TenantRow } from './tenants.repository';
export {
  SessionsRepository,
  SetupRepository,
  UsersRepository,
  type SessionState,
  type UserMembershipRow,
  type UserRow,
} from './users.repository';
export { BackupsRepository, type BackupRow, type NewBackup } from './backups.repository';
export {
  GatewayLinkRepository,
  type OnlineSiteRow,
  type RegionCandidateRow,
  type RegionHealthRow,
  type SiteSyncRow,
} from './gateway-link.repository';
export { JobBatchesRepository, type JobBatchRow } from './job-batches.repository';
export {
  BULK_INSERT_CHUNK,
  deterministicId,
  JobsRepository,
  MAX_PAGE as MAX_JOBS_PAGE,
  ROLLBACK_STEPS,
  type JobRef,
  type JobRow,
  type StepWrite,
  type FinalJobState,
  type JobStep,
  type RouterWrite,
  type NewJob,
  type Requester,
  type StepState,
} from './jobs.repository';
export { OnboardingTokensRepository } from './onboarding-tokens.repository';
export {
  SiteAgentsRepository,
  type AgentHealthRow,
  type AgentRegistration,
  type PollRecord,
} from './site-agents.repository';
export {
  SelfHealRepository,
  type FlappingChangeRow,
  type SelfHealCandidateRow,
  type SelfHealLimits,
} from './self-heal.repository';
export {
  secretContext,
  SiteCredentialsRepository,
  type OnboardingSecrets,
  type RecoveryTarget,
  type RouterCredentials,
  type SiteAccess,
  type TelemetryTarget,
} from './site-credentials.repository';
export {
  TelemetryRepository,
  type TelemetryInterfaceRow,
  type TelemetryMaintenanceRow,
  type TelemetryPointRow,
} from './telemetry.repository';
export {
  TunnelEventsRepository,
  type TunnelEventInput,
  type TunnelEventRow,
  type TunnelEventStatus,
} from './tunnel-events.repository';
export {
  IdempotencyRepository,
  type ClaimResult,
  type IdempotencyClaim,
  type IdempotencyRecord,
} from './idempotency.repository';
export {
  AlertRulesRepository,
  AlertsRepository,
  ChannelsRepository,
  OutboxRepository,
  type AlertFilter,
  type AlertRow,
  type AlertRuleInput,
  type AlertRuleRow,
  type AlertState,
  type AttemptResult,
  type ChannelInput,
  type ChannelKind,
  type ChannelRow,
  type ChannelSecrets,
  type ClaimedDelivery,
  type DeliveryPolicy,
  type DeliveryRow,
  type DeliveryState,
  type NewAlert,
  type OutboxEventRow,
} from './alerts.repository';
export {
  ApprovalsRepository,
  MaintenanceWindowsRepository,
  PlansRepository,
  type ApprovalRow,
  type ApprovalState,
  type MaintenanceWindowRow,
  type PlanRow,
  type PlanSiteRow,
  type PlanState,
} from './safe-changes.repository';
export {
  DEFAULT_FIRMWARE_POLICY,
  FirmwarePolicyRepository,
  type FirmwareChannel,
  type FirmwarePolicyRow,
  type FirmwareTagRule,
} from './firmware-policy.repository';
export { RolloutsRepository, type RolloutRow, type RolloutWaveRow, type WaveJobCount } from './rollouts.repository';
