import { Inject, Injectable } from '@nestjs/common';
import {
  MembershipsRepository,
  TenantScope,
  TenantsRepository,
  UsersRepository,
  type PageRequest,
  type TenantRole,
  type TenantTx,
} from '@backplane/db';
import { RealtimePublisher, userRoom } from '@backplane/realtime';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import { roleAtLeast, type Actor, type TenantContext } from '../common/request';
import { AuthCache } from '../auth/auth-cache';
import { API_DEPS, type ApiDeps } from '../deps';
import { assertCanGrant, InvitationsService } from './invitations.service';
import {
  toMemberResponse,
  toTenantResponse,
  type CreatedTenantResponse,
  type CreateTenantBody,
  type MemberResponse,
  type TenantResponse,
} from './tenants.dto';

type TenantOut = z.infer<typeof TenantResponse>;
type MemberOut = z.infer<typeof MemberResponse>;
type CreatedTenantOut = z.infer<typeof CreatedTenantResponse>;

@Injectable()
export class TenantsService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly tenants: TenantsRepository,
    private readonly members: MembershipsRepository,
    private readonly users: UsersRepository,
    private readonly audit: AuditService,
    private readonly realtime: RealtimePublisher,
    private readonly invitations: InvitationsService,
    private readonly authCache: AuthCache,
  ) {}

  /**
   * Platform operators onboard an MSP: the tenant and an owner invitation for the email, in one
   * transaction. No account is created or changed here (ADR 0045): whoever holds the email
   * accepts the invitation with their own password, or signed in to their existing account.
   */
  async create(actor: Actor, body: z.infer<typeof CreateTenantBody>): Promise<CreatedTenantOut> {
    return this.deps.db.inPlatform(async (tx) => {
      if (await this.tenants.existsSlug(tx, body.slug))
        throw new ApiError('conflict', 'a tenant with this slug exists');
      const tenant = await this.tenants.create(tx, { slug: body.slug, name: body.name });
      const ttx = await this.deps.db.enterTenant(tx, TenantScope.authenticated(tenant.id));
      const out = toTenantResponse(tenant);
      await this.audit.record(ttx, actor, {
        action: 'tenant.created',
        targetType: 'tenant',
        targetId: tenant.id,
        after: { ...out, owner: body.owner.email },
      });
      const ownerInvitation = await this.invitations.createIn(ttx, actor, { email: body.owner.email, role: 'owner' });
      return { ...out, ownerInvitation };
    });
  }

  async get(t: TenantContext): Promise<TenantOut> {
    const row = await this.deps.db.inTenant(t.scope, (tx) => this.tenants.current(tx));
    if (!row) throw ApiError.notFound('tenant');
    return toTenantResponse(row);
  }

  async update(
    t: TenantContext,
    body: { name?: string; mfaRequired?: boolean; commitConfirmSeconds?: number | null },
  ): Promise<TenantOut> {
    // The route admits admins for the commit-confirm window; the rest stays the owner's.
    if ((body.name !== undefined || body.mfaRequired !== undefined) && !roleAtLeast(t.role, 'owner')) {
      throw new ApiError('forbidden', 'changing the name or mfaRequired needs the owner role');
    }
    // Requiring MFA: the person turning it on must have it themselves (or they would lock
    // themselves out of the tenant's routes with their own change).
    if (body.mfaRequired && t.principal.kind === 'user') {
      const userId = t.principal.userId;
      const me = await this.deps.db.inPlatform((tx) => this.users.byId(tx, userId));
      if (!me?.totpEnabled) {
        throw new ApiError('conflict', 'turn on two-factor sign-in for your own account before requiring it');
      }
    }
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.tenants.current(tx);
      if (!before) throw ApiError.notFound('tenant');
      let row = before;
      if (body.name !== undefined) row = (await this.tenants.rename(tx, body.name)) ?? row;
      if (body.mfaRequired !== undefined) row = (await this.tenants.setMfaRequired(tx, body.mfaRequired)) ?? row;
      if (body.commitConfirmSeconds !== undefined) {
        row = (await this.tenants.setCommitConfirmSeconds(tx, body.commitConfirmSeconds)) ?? row;
      }
      await this.audit.record(tx, t.actor, {
        action: 'tenant.updated',
        targetType: 'tenant',
        targetId: row.id,
        before: {
          name: before.name,
          mfaRequired: before.mfaRequired,
          commitConfirmSeconds: before.commitConfirmSeconds,
        },
        after: { name: row.name, mfaRequired: row.mfaRequired, commitConfirmSeconds: row.commitConfirmSeconds },
      });
      return toTenantResponse(row);
    });
    // "MFA required" changes who may use the tenant's routes: no cached membership outlives it.
    // And its name is on every member's /me.
    if (body.mfaRequired !== undefined || body.name !== undefined)
      await this.authCache.revoke({ tenant: t.scope.tenantId });
    return out;
  }

  async listMembers(t: TenantContext, page: PageRequest) {
    const res = await this.deps.db.inTenant(t.scope, (tx) => this.members.list(tx, page));
    return { items: res.items.map(toMemberResponse), nextCursor: res.nextCursor };
  }

  async getMember(t: TenantContext, userId: string): Promise<MemberOut> {
    const m = await this.deps.db.inTenant(t.scope, (tx) => this.members.get(tx, userId));
    if (!m) throw ApiError.notFound('member');
    return toMemberResponse(m);
  }

  private assertCanGrant(t: TenantContext, role: TenantRole): void {
    if (role === 'owner' && t.role !== 'owner')
      throw new ApiError('forbidden', 'only an owner can grant or change the owner role');
    if (!roleAtLeast(t.role, role)) throw new ApiError('forbidden', 'you cannot grant a role above your own');
  }

  private async guardOwnerChange(
    tx: TenantTx,
    t: TenantContext,
    userId: string,
    currentRole: TenantRole,
    nextRole: TenantRole | null,
  ) {
    if (currentRole === 'owner' || nextRole === 'owner') {
      if (t.role !== 'owner') throw new ApiError('forbidden', 'only an owner can change an owner');
    }
    if (currentRole === 'owner' && nextRole !== 'owner') {
      const owners = await this.members.lockOwners(tx);
      if (owners.length <= 1 && owners.includes(userId)) {
        throw new ApiError('conflict', 'a tenant keeps at least one owner; make someone else owner first');
      }
    }
  }

  async setRole(t: TenantContext, userId: string, role: TenantRole): Promise<MemberOut> {
    assertCanGrant(t, role);
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.members.get(tx, userId);
      if (!before) throw ApiError.notFound('member');
      if (!roleAtLeast(t.role, before.role))
        throw new ApiError('forbidden', 'you cannot change a member above your role');
      await this.guardOwnerChange(tx, t, userId, before.role, role);
      await this.members.setRole(tx, userId, role);
      const after = (await this.members.get(tx, userId))!;
      await this.audit.record(tx, t.actor, {
        action: 'member.role_changed',
        targetType: 'user',
        targetId: userId,
        before: { role: before.role },
        after: { role: after.role },
      });
      return toMemberResponse(after);
    });
    await this.authCache.revoke({ user: userId }); // their sessions' and API keys' cached role
    this.realtime.disconnect(userRoom(userId));
    return out;
  }

  async removeMember(t: TenantContext, userId: string): Promise<void> {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.members.get(tx, userId);
      if (!before) throw ApiError.notFound('member');
      if (!roleAtLeast(t.role, before.role))
        throw new ApiError('forbidden', 'you cannot remove a member above your role');
      await this.guardOwnerChange(tx, t, userId, before.role, null);
      await this.members.remove(tx, userId);
      await this.audit.record(tx, t.actor, {
        action: 'member.removed',
        targetType: 'user',
        targetId: userId,
        before: toMemberResponse(before),
      });
    });
    await this.authCache.revoke({ user: userId });
    this.realtime.disconnect(userRoom(userId));
  }
}
