import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuditRepository, type AuditRow } from '@backplane/db';
import { z } from 'zod';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { cursorQuery, limitQuery, pageOf, ApiErrors } from '../common/validation';
import { API_DEPS, type ApiDeps } from '../deps';

const AuditQuery = z.strictObject({
  limit: limitQuery,
  cursor: cursorQuery,
  action: z.string().min(1).max(100).optional(),
  actorId: z.uuid().optional(),
  targetType: z.string().min(1).max(50).optional(),
  targetId: z.string().min(1).max(100).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

const AuditEntry = z.object({
  id: z.string(),
  time: z.iso.datetime(),
  actor: z.object({
    type: z.enum(['user', 'api_key', 'gateway', 'system']),
    id: z.uuid().nullable(),
    label: z.string().nullable(),
    sourceIp: z.string().nullable(),
  }),
  requestId: z.string().nullable(),
  action: z.string(),
  target: z.object({ type: z.string(), id: z.string().nullable() }),
  before: z.unknown().nullable(),
  after: z.unknown().nullable(),
});
const AuditPage = pageOf(AuditEntry);

function toEntry(r: AuditRow): z.infer<typeof AuditEntry> {
  return {
    id: r.id,
    time: r.createdAt.toISOString(),
    actor: { type: r.actorType, id: r.actorId, label: r.actorLabel, sourceIp: r.sourceIp },
    requestId: r.requestId,
    action: r.action,
    target: { type: r.targetType, id: r.targetId },
    before: r.before ?? null,
    after: r.after ?? null,
  };
}

function filterOf(q: z.infer<typeof AuditQuery>) {
  return {
    action: q.action,
    actorId: q.actorId,
    targetType: q.targetType,
    targetId: q.targetId,
    since: q.since ? new Date(q.since) : undefined,
    until: q.until ? new Date(q.until) : undefined,
  };
}

@ApiTags('audit')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1')
export class AuditController {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly audit: AuditRepository,
  ) {}

  /** Every change in the tenant, newest first. */
  @Get('tenants/:tenantId/audit-log')
  @Route('Tenant audit log', 'admin', { status: 200, standardSchema: AuditPage })
  async list(@Tenant() t: TenantContext, @Query({ schema: AuditQuery }) q: z.infer<typeof AuditQuery>) {
    const res = await this.deps.db.inTenant(t.scope, (tx) => this.audit.list(tx, q, filterOf(q)));
    return { items: res.items.map(toEntry), nextCursor: res.nextCursor };
  }

  /** Platform changes (regions, gateways, account security), for platform operators. */
  @Get('platform/audit-log')
  @Route('Platform audit log', 'platform', { status: 200, standardSchema: AuditPage })
  async platform(@Query({ schema: AuditQuery }) q: z.infer<typeof AuditQuery>) {
    const res = await this.deps.db.inPlatform((tx) => this.audit.list(tx, q, filterOf(q)));
    return { items: res.items.map(toEntry), nextCursor: res.nextCursor };
  }
}
