import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import { BulkJobRequest, JOB_STATES, JobRequest } from '@backplane/jobs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { IdempotencyHeader, IdempotencyService } from '../common/idempotency';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, cursorQuery, limitQuery, uuidParam } from '../common/validation';
import { JobsService } from './jobs.service';

const ListQuery = z.strictObject({
  siteId: z.uuid().optional(),
  batchId: z.uuid().optional(),
  state: z.enum(JOB_STATES).optional(),
  limit: limitQuery,
  cursor: cursorQuery,
});
const Step = z.object({ name: z.string(), state: z.string(), at: z.string(), detail: z.string().optional() });
const JobResponse = z.object({
  id: z.uuid(),
  siteId: z.uuid(),
  batchId: z.uuid().nullable(),
  kind: z.string(),
  payload: z.unknown(),
  state: z.enum(JOB_STATES),
  progress: z.number(),
  steps: z.array(Step),
  result: z.unknown(),
  error: z.string().nullable(),
  attempts: z.number(),
  requestedBy: z.object({ type: z.string(), id: z.string().nullable(), label: z.string().nullable() }),
  hasExports: z.boolean(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  expiresAt: z.string(),
});
const BatchResponse = z.object({
  id: z.uuid(),
  kind: z.string(),
  total: z.number(),
  states: z.record(z.string(), z.number()),
  finished: z.number(),
  done: z.boolean(),
  createdAt: z.string(),
});
const IdemHeader = () => IdempotencyHeader(true);
/** `?urgent=true` (admins): run now even outside the site's maintenance windows (ADR 0090). */
const UrgentQuery = z.strictObject({ urgent: z.enum(['true', 'false']).default('false') });

@ApiTags('jobs')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId')
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly idem: IdempotencyService,
  ) {}

  /** Enqueue a job for one site. Configuration changes, commands, backups, reboots, upgrades. */
  @Post('sites/:siteId/jobs')
  @Route('Enqueue a job for a site', 'operator')
  @IdemHeader()
  @ApiResponse({ status: 201, standardSchema: JobResponse })
  async enqueue(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) siteId: string,
    @Body({ schema: JobRequest }) body: JobRequest,
    @Query({ schema: UrgentQuery }) q: z.infer<typeof UrgentQuery>,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const { job, created } = await this.jobs.enqueue(t, siteId, body, this.idem.claimOf(req), q.urgent === 'true');
    void res.status(created ? 201 : 200);
    return job;
  }

  /** Recreate the site's tunnel: new credentials, router repaired over the tunnel or at its next poll. */
  @Post('sites/:siteId/recreate-tunnel')
  @Route("Recreate a site's tunnel (a job)", 'operator')
  @IdemHeader()
  @ApiResponse({ status: 201, standardSchema: JobResponse })
  async recreate(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) siteId: string,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const { job, created } = await this.jobs.enqueue(
      t,
      siteId,
      { kind: 'recreate-tunnel', payload: {} },
      this.idem.claimOf(req),
    );
    void res.status(created ? 201 : 200);
    return job;
  }

  /**
   * One change for many sites (ids or tags) as a batch of per-site jobs. Tags that match no
   * site answer 422 `no_matching_sites` (no empty batch is created).
   */
  @Post('jobs/bulk')
  @Route('Enqueue one job for many sites (a batch)', 'operator')
  @IdemHeader()
  @ApiResponse({ status: 201, standardSchema: z.object({ batch: BatchResponse }) })
  async bulk(
    @Tenant() t: TenantContext,
    @Body({ schema: BulkJobRequest }) body: BulkJobRequest,
    @Query({ schema: UrgentQuery }) q: z.infer<typeof UrgentQuery>,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const { batch, created } = await this.jobs.bulk(t, body, this.idem.claimOf(req), q.urgent === 'true');
    void res.status(created ? 201 : 200);
    return { batch };
  }

  @Get('job-batches/:batchId')
  @Route('Get a batch of jobs', 'viewer', { status: 200, standardSchema: BatchResponse })
  batch(@Tenant() t: TenantContext, @Param('batchId', { schema: uuidParam }) id: string) {
    return this.jobs.batch(t, id);
  }

  @Get('jobs')
  @Route('List jobs', 'viewer', {
    status: 200,
    standardSchema: z.object({ items: z.array(JobResponse), nextCursor: z.string().nullable() }),
  })
  list(@Tenant() t: TenantContext, @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.jobs.list(t, {
      limit: q.limit,
      ...(q.siteId ? { siteId: q.siteId } : {}),
      ...(q.batchId ? { batchId: q.batchId } : {}),
      ...(q.state ? { state: q.state } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
  }

  @Get('jobs/:jobId')
  @Route('Get a job', 'viewer', { status: 200, standardSchema: JobResponse })
  get(@Tenant() t: TenantContext, @Param('jobId', { schema: uuidParam }) id: string) {
    return this.jobs.get(t, id);
  }

  /**
   * Before/after record of a configuration job and their unified diff: for apply-config the
   * exports of the menus it touches, for run-command and restore the full `/export show-sensitive`.
   */
  @Get('jobs/:jobId/exports')
  @Route("A job's before/after exports and their diff", 'admin')
  exports(@Tenant() t: TenantContext, @Param('jobId', { schema: uuidParam }) id: string) {
    return this.jobs.exports(t, id);
  }

  /** Queued and waiting jobs end at once; a running job stops before its next step. */
  @Post('jobs/:jobId/cancel')
  @Route('Cancel a job', 'operator')
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: JobResponse })
  cancel(@Tenant() t: TenantContext, @Param('jobId', { schema: uuidParam }) id: string) {
    return this.jobs.cancel(t, id);
  }
}
