import { Inject, Injectable } from '@nestjs/common';
import { ApiKeysRepository, type ApiKeyRow, type PageRequest } from '@backplane/db';
import { apiKeyRoom, RealtimePublisher } from '@backplane/realtime';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { newSecret, TokenService } from '../auth/tokens';
import { ApiError } from '../common/api-error';
import { roleAtLeast, type TenantContext } from '../common/request';
import { AuthCache } from '../auth/auth-cache';
import { API_DEPS, type ApiDeps } from '../deps';
import {
  API_KEY_DEFAULT_DAYS,
  type ApiKeyOut,
  type CreateApiKeyBody,
  type CreatedApiKeyResponse,
  type RenewApiKeyBody,
} from './api-keys.schemas';

const expiry = (iso: string | undefined) =>
  iso ? new Date(iso) : new Date(Date.now() + API_KEY_DEFAULT_DAYS * 86_400_000);

function toResponse(k: ApiKeyRow): ApiKeyOut {
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    prefix: k.prefix,
    createdBy: k.createdBy,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt.toISOString(),
    revokedAt: k.revokedAt?.toISOString() ?? null,
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  };
}

@Injectable()
export class ApiKeysService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly keys: ApiKeysRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditService,
    private readonly realtime: RealtimePublisher,
    private readonly authCache: AuthCache,
  ) {}

  async create(
    t: TenantContext,
    body: z.infer<typeof CreateApiKeyBody>,
  ): Promise<z.infer<typeof CreatedApiKeyResponse>> {
    if (!roleAtLeast(t.role, body.role)) throw new ApiError('forbidden', 'an API key cannot have a role above yours');
    const key = newSecret('bpk');
    return this.deps.db.inTenant(t.scope, async (tx) => {
      // The key belongs to a member: the signed-in user, or (a key minting a key) the member
      // the minting key belongs to. `t.role` is already capped at that member's role.
      const p = t.principal;
      const createdBy =
        p.kind === 'user'
          ? p.userId
          : p.kind === 'apiKey'
            ? ((await this.keys.get(tx, p.apiKeyId))?.createdBy ?? null)
            : null;
      if (!createdBy) throw new ApiError('forbidden', 'an API key belongs to a member; this caller is none');
      const row = await this.keys.create(tx, {
        name: body.name,
        role: body.role,
        prefix: key.slice(0, 12),
        keyHash: this.tokens.hash(key),
        createdBy,
        expiresAt: expiry(body.expiresAt),
      });
      const out = toResponse(row);
      await this.audit.record(tx, t.actor, {
        action: 'api_key.created',
        targetType: 'api_key',
        targetId: row.id,
        after: out,
      });
      return { ...out, key };
    });
  }

  async list(t: TenantContext, page: PageRequest) {
    const res = await this.deps.db.inTenant(t.scope, (tx) => this.keys.list(tx, page));
    return { items: res.items.map(toResponse), nextCursor: res.nextCursor };
  }

  async get(t: TenantContext, id: string): Promise<ApiKeyOut> {
    const row = await this.deps.db.inTenant(t.scope, (tx) => this.keys.get(tx, id));
    if (!row) throw ApiError.notFound('API key');
    return toResponse(row);
  }

  /** A new expiry (default 90 days from now) for a key at most the caller's role; revoked keys stay revoked. */
  async renew(t: TenantContext, id: string, body: z.infer<typeof RenewApiKeyBody>): Promise<ApiKeyOut> {
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.keys.get(tx, id);
      if (!before) throw ApiError.notFound('API key');
      if (!roleAtLeast(t.role, before.role)) throw new ApiError('forbidden', 'this API key has a role above yours');
      if (before.revokedAt) throw new ApiError('conflict', 'a revoked API key cannot be renewed');
      const after = await this.keys.renew(tx, id, expiry(body.expiresAt));
      if (!after) throw new ApiError('conflict', 'a revoked API key cannot be renewed');
      await this.audit.record(tx, t.actor, {
        action: 'api_key.renewed',
        targetType: 'api_key',
        targetId: id,
        before: { expiresAt: before.expiresAt.toISOString() },
        after: { expiresAt: after.expiresAt.toISOString() },
      });
      return toResponse(after);
    });
    await this.authCache.revoke({ apiKey: id }); // the new expiry, on every api process
    return out;
  }

  async revoke(t: TenantContext, id: string): Promise<void> {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.keys.get(tx, id);
      if (!before) throw ApiError.notFound('API key');
      const after = await this.keys.revoke(tx, id);
      await this.audit.record(tx, t.actor, {
        action: 'api_key.revoked',
        targetType: 'api_key',
        targetId: id,
        before: { revokedAt: before.revokedAt },
        after: { revokedAt: after?.revokedAt ?? null },
      });
    });
    await this.authCache.revoke({ apiKey: id });
    this.realtime.disconnect(apiKeyRoom(id));
  }
}
