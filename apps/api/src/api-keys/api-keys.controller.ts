import { Body, Controller, Delete, Get, HttpCode, Inject, Injectable, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiKeysRepository, type ApiKeyRow, type PageRequest } from '@backplane/db';
import { apiKeyRoom, RealtimePublisher } from '@backplane/realtime';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { newSecret, TokenService } from '../auth/tokens';
import { ApiError } from '../common/api-error';
import { roleAtLeast, Tenant, TenantAccess, type TenantContext } from '../common/request';
import { cursorQuery, limitQuery, pageOf, tenantRole, text, uuidParam, ApiErrors } from '../common/validation';
import { API_DEPS, type ApiDeps } from '../deps';

export const CreateApiKeyBody = z.strictObject({
  name: text(200),
  role: tenantRole,
  expiresAt: z.iso
    .datetime({ offset: true })
    .refine((v) => Date.parse(v) > Date.now(), 'must be in the future')
    .optional(),
});
const ListQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

export const ApiKeyResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  role: tenantRole,
  /** The visible start of the key, to recognise it in lists and logs. */
  prefix: z.string(),
  createdBy: z.uuid().nullable(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime().nullable(),
  revokedAt: z.iso.datetime().nullable(),
  lastUsedAt: z.iso.datetime().nullable(),
});
/** Only the create answer carries the secret; it is never shown again. */
export const CreatedApiKeyResponse = ApiKeyResponse.extend({ key: z.string() });
const ApiKeyPage = pageOf(ApiKeyResponse);

type ApiKeyOut = z.infer<typeof ApiKeyResponse>;

function toResponse(k: ApiKeyRow): ApiKeyOut {
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    prefix: k.prefix,
    createdBy: k.createdBy,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt?.toISOString() ?? null,
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
  ) {}

  async create(
    t: TenantContext,
    body: z.infer<typeof CreateApiKeyBody>,
  ): Promise<z.infer<typeof CreatedApiKeyResponse>> {
    if (!roleAtLeast(t.role, body.role)) throw new ApiError('forbidden', 'an API key cannot have a role above yours');
    const key = newSecret('bpk');
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const row = await this.keys.create(tx, {
        name: body.name,
        role: body.role,
        prefix: key.slice(0, 12),
        keyHash: this.tokens.hash(key),
        createdBy: t.principal.kind === 'user' ? t.principal.userId : null,
        expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
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
    this.realtime.disconnect(apiKeyRoom(id));
  }
}

@ApiTags('api-keys')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Get()
  @TenantAccess('admin')
  @ApiResponse({ status: 200, standardSchema: ApiKeyPage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.keys.list(t, q);
  }

  /** Not idempotent on purpose: replaying the answer would mean keeping the secret. */
  @Post()
  @TenantAccess('admin')
  @ApiResponse({ status: 201, standardSchema: CreatedApiKeyResponse })
  create(@Tenant() t: TenantContext, @Body({ schema: CreateApiKeyBody }) body: z.infer<typeof CreateApiKeyBody>) {
    return this.keys.create(t, body);
  }

  @Get(':keyId')
  @TenantAccess('admin')
  @ApiResponse({ status: 200, standardSchema: ApiKeyResponse })
  get(@Tenant() t: TenantContext, @Param('keyId', { schema: uuidParam }) id: string) {
    return this.keys.get(t, id);
  }

  /** Revokes the key at once; it stays listed with `revokedAt`. */
  @Delete(':keyId')
  @TenantAccess('admin')
  @HttpCode(204)
  async revoke(@Tenant() t: TenantContext, @Param('keyId', { schema: uuidParam }) id: string): Promise<void> {
    await this.keys.revoke(t, id);
  }
}
