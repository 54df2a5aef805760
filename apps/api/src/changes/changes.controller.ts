import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { Idempotent } from '../common/idempotency';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, uuidParam } from '../common/validation';
import {
  ApplyPlanRequest,
  ApprovalPolicy,
  ApprovalResponse,
  CreatePlanRequest,
  DecisionRequest,
  InboxQuery,
  ListQuery,
  PlanResponse,
  TimezoneRequest,
  WindowRequest,
  WindowResponse,
} from './changes.schemas';
import { ChangesService } from './changes.service';

const ApplyResponse = z.object({ plan: PlanResponse, approval: ApprovalResponse.nullable() });
const ApprovalWithPlan = ApprovalResponse.extend({ plan: PlanResponse.nullable() });
const SiteMaintenance = z.object({
  siteId: z.uuid(),
  timezone: z.string(),
  windows: z.array(WindowResponse),
  unrestricted: z.boolean(),
  open: z.boolean(),
  closesAt: z.string().nullable(),
  nextOpening: z.string().nullable(),
});

/** Plans (previews), approvals and maintenance windows (docs/adr/0088-0090). */
@ApiTags('changes')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId')
export class ChangesController {
  constructor(private readonly changes: ChangesService) {}

  /**
   * Preview one change for sites (ids and/or tags): each site's router is read (nothing is
   * written) and the plan lists, per site, the exact changes and RouterOS commands apply
   * would make. Poll `GET /plans/{id}` until `ready`.
   */
  @Post('plans')
  @Route('Preview a change (a plan)', 'operator', { status: 201, standardSchema: PlanResponse })
  @Idempotent()
  createPlan(@Tenant() t: TenantContext, @Body({ schema: CreatePlanRequest }) body: CreatePlanRequest) {
    return this.changes.createPlan(t, body);
  }

  @Get('plans')
  @Route('List plans', 'viewer', {
    status: 200,
    standardSchema: z.object({ items: z.array(PlanResponse), nextCursor: z.string().nullable() }),
  })
  listPlans(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.changes.listPlans(t, { limit: q.limit, cursor: q.cursor });
  }

  @Get('plans/:planId')
  @Route('Get a plan (per-site diff)', 'viewer', { status: 200, standardSchema: PlanResponse })
  getPlan(@Tenant() t: TenantContext, @Param('planId', { schema: uuidParam }) id: string) {
    return this.changes.getPlan(t, id);
  }

  /**
   * Apply exactly what the plan previewed: 201 with the apply jobs started (a site whose
   * router changed since ends `plan_stale`, nothing written there); 202 with an approval
   * request when the tenant's policy asks for a second person; 409 `plan_expired`,
   * `plan_not_ready`, `approval_required`.
   */
  @Post('plans/:planId/apply')
  @Route('Apply a plan', 'operator')
  @ApiResponse({ status: 201, standardSchema: ApplyResponse })
  @ApiResponse({ status: 202, standardSchema: ApplyResponse })
  @Idempotent()
  async applyPlan(
    @Tenant() t: TenantContext,
    @Param('planId', { schema: uuidParam }) id: string,
    @Body({ schema: ApplyPlanRequest }) body: z.infer<typeof ApplyPlanRequest>,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const out = await this.changes.applyPlan(t, id, body.urgent);
    void res.status(out.status);
    return out.body;
  }

  @Get('approval-policy')
  @Route('Get the approval policy', 'viewer', { status: 200, standardSchema: ApprovalPolicy })
  getPolicy(@Tenant() t: TenantContext) {
    return this.changes.getPolicy(t);
  }

  /** Which changes need a second person, and of which role; how long a request stays open. */
  @Put('approval-policy')
  @Route('Set the approval policy', 'admin', { status: 200, standardSchema: ApprovalPolicy })
  setPolicy(@Tenant() t: TenantContext, @Body({ schema: ApprovalPolicy }) body: ApprovalPolicy) {
    return this.changes.setPolicy(t, body);
  }

  /** Approval requests newest first, with counts per state and each request's plan. */
  @Get('approvals')
  @Route('Approval inbox', 'viewer', {
    status: 200,
    standardSchema: z.object({
      counts: z.object({ pending: z.number(), approved: z.number(), rejected: z.number(), expired: z.number() }),
      items: z.array(ApprovalWithPlan),
      nextCursor: z.string().nullable(),
    }),
  })
  inbox(@Tenant() t: TenantContext, @Query({ schema: InboxQuery }) q: z.infer<typeof InboxQuery>) {
    return this.changes.inbox(t, { state: q.state, limit: q.limit, cursor: q.cursor });
  }

  @Get('approvals/:approvalId')
  @Route('Get an approval request', 'viewer', { status: 200, standardSchema: ApprovalWithPlan })
  getApproval(@Tenant() t: TenantContext, @Param('approvalId', { schema: uuidParam }) id: string) {
    return this.changes.getApproval(t, id);
  }

  /**
   * Another person than the requester, with the required role, before it expires; the plan is
   * then applied (`plan`), or the rollout becomes runnable and its first wave starts (`plan`
   * null: read the rollout by `approval.rolloutId`).
   */
  @Post('approvals/:approvalId/approve')
  @Route('Approve a change', 'operator', {
    status: 200,
    standardSchema: z.object({ approval: ApprovalResponse, plan: PlanResponse.nullable() }),
  })
  @HttpCode(200)
  @Idempotent()
  approve(
    @Tenant() t: TenantContext,
    @Param('approvalId', { schema: uuidParam }) id: string,
    @Body({ schema: DecisionRequest }) body: z.infer<typeof DecisionRequest>,
  ) {
    return this.changes.approve(t, id, body.comment);
  }

  @Post('approvals/:approvalId/reject')
  @Route('Reject a change', 'operator', { status: 200, standardSchema: ApprovalResponse })
  @HttpCode(200)
  @Idempotent()
  reject(
    @Tenant() t: TenantContext,
    @Param('approvalId', { schema: uuidParam }) id: string,
    @Body({ schema: DecisionRequest }) body: z.infer<typeof DecisionRequest>,
  ) {
    return this.changes.reject(t, id, body.comment);
  }

  @Get('maintenance-windows')
  @Route('List maintenance windows', 'viewer', {
    status: 200,
    standardSchema: z.object({ items: z.array(WindowResponse) }),
  })
  listWindows(@Tenant() t: TenantContext) {
    return this.changes.listWindows(t);
  }

  /** A weekly window for a site or a tag, in the site's timezone; changes outside every window wait. */
  @Post('maintenance-windows')
  @Route('Create a maintenance window', 'admin', { status: 201, standardSchema: WindowResponse })
  @Idempotent()
  createWindow(@Tenant() t: TenantContext, @Body({ schema: WindowRequest }) body: WindowRequest) {
    return this.changes.createWindow(t, body);
  }

  @Delete('maintenance-windows/:windowId')
  @Route('Delete a maintenance window', 'admin')
  @HttpCode(204)
  async deleteWindow(@Tenant() t: TenantContext, @Param('windowId', { schema: uuidParam }) id: string) {
    await this.changes.deleteWindow(t, id);
  }

  @Get('sites/:siteId/maintenance')
  @Route("A site's timezone, windows and whether one is open", 'viewer', {
    status: 200,
    standardSchema: SiteMaintenance,
  })
  siteMaintenance(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    return this.changes.siteMaintenance(t, id);
  }

  /** The site's IANA timezone (windows are in it). */
  @Put('sites/:siteId/timezone')
  @Route("Set a site's timezone", 'admin', { status: 200, standardSchema: SiteMaintenance })
  setTimezone(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Body({ schema: TimezoneRequest }) body: z.infer<typeof TimezoneRequest>,
  ) {
    return this.changes.setTimezone(t, id, body.timezone);
  }
}
