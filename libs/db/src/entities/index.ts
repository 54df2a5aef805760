import { KeyringCheckEntity } from './keyring-check.entity';
import { MembershipEntity } from './membership.entity';
import { TenantEntity } from './tenant.entity';
import { UserEntity } from './user.entity';

export { KeyringCheckEntity, MembershipEntity, TenantEntity, UserEntity };
export { TENANT_ROLES, type TenantRole } from './membership.entity';

export const ENTITIES = [TenantEntity, UserEntity, MembershipEntity, KeyringCheckEntity];
