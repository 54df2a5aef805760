import { Inject, Injectable } from '@nestjs/common';
import {
  InvitationsRepository,
  MembershipsRepository,
  TenantScope,
  UsersRepository,
  type PageRequest,
  type TenantRole,
  type TenantTx,
} from '@backplane/db';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { hashPassword, passwordProblem } from '../auth/passwords';
import { newSecret, TokenService } from '../auth/tokens';
import { ApiError } from '../common/api-error';
import { roleAtLeast, type Actor, type Principal, type TenantContext } from '../common/request';
import { AuthCache } from '../auth/auth-cache';
import { API_DEPS, type ApiDeps } from '../deps';
import {
  toInvitationResponse,
  type AcceptedResponse,
  type CreatedInvitationResponse,
  type InvitationResponse,
} from './invitations.dto';

/** How long an invitation link stays usable. */
export const INVITATION_TTL_MS = 7 * 24 * 3600 * 1000;

type Created = z.infer<typeof CreatedInvitationResponse>;
type Accepted = z.infer<typeof AcceptedResponse>;

/** The same answer for every unusable token: unknown, used, revoked or expired. */
const unusable = () => new ApiError('not_found', 'invitation not found, already used, revoked or expired');

/** Roles a caller may hand out: never above their own, and owner only by an owner. */
export function assertCanGrant(t: Pick<TenantContext, 'role'>, role: TenantRole): void {
  if (role === 'owner' && t.role !== 'owner')
    throw new ApiError('forbidden', 'only an owner can grant or change the owner role');
  if (!roleAtLeast(t.role, role)) throw new ApiError('forbidden', 'you cannot grant a role above your own');
}

/**
 * Adding someone to a tenant (issue 14 finding 1, ADR 0045). An admin never creates, finds or
 * enrolls an account: they get a single-use link for an email. The answer is the same whether
 * an account with that email exists or not. The membership appears only when the invitee
 * accepts: with a password of their own for a new account, or signed in as the invited email.
 */
@Injectable()
export class InvitationsService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly tokens: TokenService,
    private readonly invitations: InvitationsRepository,
    private readonly members: MembershipsRepository,
    private readonly users: UsersRepository,
    private readonly audit: AuditService,
    private readonly authCache: AuthCache,
  ) {}

  private acceptUrl(token: string): string {
    const c = this.deps.config;
    const base = (c.CONTROLLER_PUBLIC_URL ?? `http://${c.API_HOST}:${c.API_PORT}`).replace(/\/+$/, '');
    return `${base}/accept-invite?token=${encodeURIComponent(token)}`;
  }

  async create(t: TenantContext, body: { email: string; role: TenantRole }): Promise<Created> {
    assertCanGrant(t, body.role);
    return this.deps.db.inTenant(t.scope, (tx) => this.createIn(tx, t.actor, body));
  }

  /** Inside an open tenant transaction (also used when a platform operator creates a tenant). */
  async createIn(tx: TenantTx, actor: Actor, body: { email: string; role: TenantRole }): Promise<Created> {
    if (await this.members.hasEmail(tx, body.email))
      throw new ApiError('conflict', 'this person is already a member of the tenant');
    const token = newSecret('bpi');
    const { row, replaced } = await this.invitations.create(tx, {
      email: body.email,
      role: body.role,
      tokenHash: this.tokens.hash(token),
      createdBy: actor.actorType === 'user' ? actor.actorId : null,
      expiresAt: new Date(Date.now() + INVITATION_TTL_MS),
    });
    const out = toInvitationResponse(row);
    await this.audit.record(tx, actor, {
      action: 'invitation.created',
      targetType: 'invitation',
      targetId: row.id,
      after: { ...out, replaced },
    });
    return { ...out, token, acceptUrl: this.acceptUrl(token) };
  }

  async list(t: TenantContext, page: PageRequest) {
    const res = await this.deps.db.inTenant(t.scope, (tx) => this.invitations.listPending(tx, page));
    const now = Date.now();
    return { items: res.items.map((r) => toInvitationResponse(r, now)), nextCursor: res.nextCursor };
  }

  async revoke(t: TenantContext, id: string): Promise<void> {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      const row = await this.invitations.getPending(tx, id);
      if (!row) throw ApiError.notFound('invitation');
      if (!roleAtLeast(t.role, row.role))
        throw new ApiError('forbidden', 'you cannot revoke an invitation above your role');
      await this.invitations.revoke(tx, id);
      await this.audit.record(tx, t.actor, {
        action: 'invitation.revoked',
        targetType: 'invitation',
        targetId: id,
        before: toInvitationResponse(row),
      });
    });
  }

  /** The tenant of an invitation token (any state), or the one "unusable" answer. */
  private async tenantOf(token: string): Promise<{ tenantId: string; hash: string }> {
    const hash = this.tokens.hash(token);
    const tenantId = await this.deps.db.inPlatform((tx) => this.invitations.tenantOfToken(tx, hash));
    if (!tenantId) throw unusable();
    return { tenantId, hash };
  }

  /** Enters the invitation's tenant and runs `fn` with the locked, usable invitation. */
  private inInvitation<T>(
    found: { tenantId: string; hash: string },
    fn: (tx: TenantTx, inv: { id: string; email: string; role: TenantRole }) => Promise<T>,
  ): Promise<T> {
    // The token is the proof of access to this tenant's invitation, as a membership is elsewhere.
    return this.deps.db.inTenant(TenantScope.authenticated(found.tenantId), async (tx) => {
      const inv = await this.invitations.lockUsable(tx, found.hash);
      if (!inv) throw unusable();
      return fn(tx, inv);
    });
  }

  private async join(
    tx: TenantTx,
    inv: { id: string; email: string; role: TenantRole },
    user: { id: string; email: string },
    req: { ip: string | null; requestId: string | null },
  ): Promise<Accepted> {
    if (!(await this.members.add(tx, user.id, inv.role))) {
      throw new ApiError('conflict', 'you are already a member of this tenant');
    }
    await this.invitations.markAccepted(tx, inv.id, user.id);
    await this.audit.record(
      tx,
      { actorType: 'user', actorId: user.id, actorLabel: user.email, sourceIp: req.ip, requestId: req.requestId },
      { action: 'invitation.accepted', targetType: 'invitation', targetId: inv.id, after: { role: inv.role } },
    );
    return { tenantId: tx.tenantId, userId: user.id, role: inv.role };
  }

  /** Public: a new account for the invited email, with the invitee's own password. */
  async acceptNew(
    body: { token: string; password: string; displayName?: string | undefined },
    req: { ip: string | null; requestId: string | null },
  ): Promise<Accepted> {
    const found = await this.tenantOf(body.token);
    // Hashed only for a token that exists (no argon2 work for random tokens), outside the transaction.
    const passwordHash = await hashPassword(body.password);
    const accepted = await this.inInvitation(found, async (tx, inv) => {
      const problem = passwordProblem(body.password, inv.email);
      if (problem) throw new ApiError('validation_failed', `password ${problem}`);
      if (await this.users.byEmail(tx, inv.email)) {
        // Only the token holder learns this, and no password is set on an existing account.
        throw new ApiError('conflict', 'an account with this email exists: sign in and accept the invitation there');
      }
      const user = await this.users.create(tx, {
        email: inv.email,
        displayName: body.displayName ?? inv.email,
        passwordHash,
      });
      return this.join(tx, inv, user, req);
    });
    await this.authCache.revoke({ user: accepted.userId }); // their /me lists the tenant now
    return accepted;
  }

  /** Signed in: the existing account joins, if it is the invited email. */
  async acceptSignedIn(
    p: Principal,
    token: string,
    req: { ip: string | null; requestId: string | null },
  ): Promise<Accepted> {
    if (p.kind !== 'user') throw new ApiError('forbidden', 'this route needs a user');
    const accepted = await this.inInvitation(await this.tenantOf(token), async (tx, inv) => {
      const user = await this.users.byId(tx, p.userId);
      if (!user || user.email !== inv.email)
        throw new ApiError('forbidden', 'this invitation is for another email address');
      return this.join(tx, inv, user, req);
    });
    await this.authCache.revoke({ user: accepted.userId });
    return accepted;
  }
}

export type InvitationOut = z.infer<typeof InvitationResponse>;
