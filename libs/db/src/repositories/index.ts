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
  encodeCursor,
  InvalidCursorError,
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
