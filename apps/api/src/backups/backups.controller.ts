import { Controller, Get, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { IdempotencyHeader, IdempotencyService } from '../common/idempotency';
import { Tenant, type TenantContext } from '../common/request';
import { ApiErrors, cursorQuery, uuidParam } from '../common/validation';
import { JobsService } from '../jobs/jobs.service';
import { BackupsService } from './backups.service';
import { Route } from '../common/route';

const DiffQuery = z.strictObject({ from: z.uuid(), to: z.uuid() });
/** Up to 500 per page (the default: what the list returned before it was paged). */
const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(500),
  cursor: cursorQuery,
});

@ApiTags('backups')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId')
export class BackupsController {
  constructor(
    private readonly backups: BackupsService,
    private readonly jobs: JobsService,
    private readonly idem: IdempotencyService,
  ) {}

  @Get('sites/:siteId/backups')
  @Route("List a site's backups", 'viewer')
  list(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) siteId: string,
    @Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>,
  ) {
    return this.backups.list(t, siteId, q);
  }

  /** Back up now (a job; deduplicated when nothing changed since the last backup). */
  @Post('sites/:siteId/backups')
  @Route('Back up a site now (a job)', 'operator')
  @IdempotencyHeader(true)
  async create(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) siteId: string,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const { job, created } = await this.jobs.enqueue(
      t,
      siteId,
      { kind: 'backup', payload: { reason: 'manual' } },
      this.idem.claimOf(req),
    );
    void res.status(created ? 201 : 200);
    return job;
  }

  /** The export itself (holds secrets: admin). */
  @Get('backups/:backupId')
  @Route('Get a backup (the export)', 'admin')
  get(@Tenant() t: TenantContext, @Param('backupId', { schema: uuidParam }) id: string) {
    return this.backups.get(t, id);
  }

  @Get('backup-diff')
  @Route('Diff two backups', 'admin')
  diff(@Tenant() t: TenantContext, @Query({ schema: DiffQuery }) q: z.infer<typeof DiffQuery>) {
    return this.backups.diff(t, q.from, q.to);
  }

  /** Restore is a job (admin). */
  @Post('backups/:backupId/restore')
  @Route('Restore a backup (a job)', 'admin')
  @IdempotencyHeader(true)
  async restore(
    @Tenant() t: TenantContext,
    @Param('backupId', { schema: uuidParam }) id: string,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const { job, created } = await this.backups.restore(t, id, this.idem.claimOf(req));
    void res.status(created ? 201 : 200);
    return job;
  }
}
