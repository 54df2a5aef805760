import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ROLLOUT_STATES, RolloutRequest, WAVE_STATES } from '@backplane/jobs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { IdempotencyHeader, IdempotencyService } from '../common/idempotency';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, cursorQuery, limitQuery, pageOf, uuidParam } from '../common/validation';
import { RolloutsService } from './rollouts.service';

const Gate = z.object({
  passed: z.boolean(),
  sites: z.number(),
  failures: z.number(),
  allowed: z.number(),
  causes: z.record(z.string(), z.number()),
  examples: z.array(z.object({ siteId: z.string(), reason: z.string() })),
  at: z.string(),
});
const Wave = z.object({
  index: z.number(),
  sites: z.number(),
  state: z.enum(WAVE_STATES),
  attempt: z.number(),
  batchId: z.uuid().nullable(),
  /** States of each site's latest job in the wave. */
  jobs: z.record(z.string(), z.number()),
  gate: Gate.nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
export const RolloutResponse = z.object({
  id: z.uuid(),
  kind: z.string(),
  payload: z.unknown(),
  state: z.enum(ROLLOUT_STATES),
  reason: z.string().nullable(),
  total: z.number(),
  currentWave: z.number(),
  counts: z.object({ succeeded: z.number(), failed: z.number(), open: z.number(), notStarted: z.number() }),
  waves: z.array(Wave),
  wavesSpec: z.unknown(),
  gates: z.unknown(),
  /**
   * The approval request of a rollout the tenant's approval policy matched (state
   * `pending_approval` until it is decided; docs/adr/0110), else null.
   */
  approval: z
    .object({
      id: z.uuid(),
      state: z.enum(['pending', 'approved', 'rejected', 'expired']),
      requiredRole: z.string(),
      reasons: z.array(z.string()),
      expiresAt: z.string(),
      decidedBy: z.record(z.string(), z.unknown()).nullable(),
      decidedAt: z.string().nullable(),
      comment: z.string().nullable(),
    })
    .nullable(),
  requestedBy: z.object({ type: z.string(), id: z.string().nullable(), label: z.string().nullable() }),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
});
const ListQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

@ApiTags('rollouts')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/rollouts')
export class RolloutsController {
  constructor(
    private readonly rollouts: RolloutsService,
    private readonly idem: IdempotencyService,
  ) {}

  /**
   * One change for many sites (ids or tags) as a rollout: a canary wave, then growing waves
   * (`waves`), each wave's jobs created only when it starts; after each wave the health gates
   * (`gates`) decide whether the next starts, and more failures than `maxFailures` halt it.
   * A change the tenant's approval policy matches is created `pending_approval` with an
   * approval request (`approval`: reasons, required role); no wave starts until another
   * person with that role approves it (`POST /approvals/{id}/approve`).
   */
  @Post()
  @Route('Start a rollout (a bulk change in waves with health gates)', 'operator')
  @IdempotencyHeader(true)
  @ApiResponse({ status: 201, standardSchema: RolloutResponse })
  async create(
    @Tenant() t: TenantContext,
    @Body({ schema: RolloutRequest }) body: RolloutRequest,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const { rollout, created } = await this.rollouts.create(t, body, this.idem.claimOf(req));
    void res.status(created ? 201 : 200);
    return rollout;
  }

  @Get()
  @Route('List rollouts (newest first)', 'viewer', {
    status: 200,
    standardSchema: pageOf(RolloutResponse),
  })
  list(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.rollouts.list(t, q.limit, q.cursor);
  }

  @Get(':rolloutId')
  @Route('Get a rollout and its waves', 'viewer', { status: 200, standardSchema: RolloutResponse })
  get(@Tenant() t: TenantContext, @Param('rolloutId', { schema: uuidParam }) id: string) {
    return this.rollouts.get(t, id);
  }

  /** The running wave's jobs go on; the next wave does not start until resumed. */
  @Post(':rolloutId/pause')
  @Route('Pause a rollout before its next wave', 'operator')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: RolloutResponse })
  pause(@Tenant() t: TenantContext, @Param('rolloutId', { schema: uuidParam }) id: string) {
    return this.rollouts.pause(t, id);
  }

  /** A paused rollout goes on; a halted one runs its failed wave again (sites without a succeeded job), then goes on. */
  @Post(':rolloutId/resume')
  @Route('Resume a paused or halted rollout', 'operator')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: RolloutResponse })
  resume(@Tenant() t: TenantContext, @Param('rolloutId', { schema: uuidParam }) id: string) {
    return this.rollouts.resume(t, id);
  }

  /**
   * Pending waves are cancelled and queued jobs of the running wave end; running jobs finish.
   * A rollout still waiting for approval is withdrawn (its request ends `rejected`).
   */
  @Post(':rolloutId/abort')
  @Route('Abort a rollout', 'operator')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: RolloutResponse })
  abort(@Tenant() t: TenantContext, @Param('rolloutId', { schema: uuidParam }) id: string) {
    return this.rollouts.abort(t, id);
  }
}
