import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { Idempotent } from '../common/idempotency';
import { Tenant, type TenantContext } from '../common/request';
import { uuidParam, ApiErrors } from '../common/validation';
import {
  CreateSiteBody,
  ListSitesQuery,
  SitePage,
  SiteResponse,
  SiteSummaryResponse,
  UpdateSiteBody,
} from './sites.dto';
import { SitesService } from './sites.service';
import { Route } from '../common/route';

@ApiTags('sites')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/sites')
export class SitesController {
  constructor(private readonly sites: SitesService) {}

  @Get()
  @Route('List sites', 'viewer', { status: 200, standardSchema: SitePage })
  list(@Tenant() t: TenantContext, @Query({ schema: ListSitesQuery }) q: z.infer<typeof ListSitesQuery>) {
    return this.sites.list(
      t,
      { limit: q.limit, cursor: q.cursor },
      {
        q: q.q,
        tag: q.tag,
        online: q.online,
        health: q.health,
      },
    );
  }

  /** Counts by health and region for the fleet overview (one query, whatever the fleet size). */
  @Get('summary')
  @Route('Fleet counts by health', 'viewer', { status: 200, standardSchema: SiteSummaryResponse })
  summary(@Tenant() t: TenantContext) {
    return this.sites.summary(t);
  }

  @Post()
  @Route('Create a site', 'operator', { status: 201, standardSchema: SiteResponse })
  @Idempotent()
  create(@Tenant() t: TenantContext, @Body({ schema: CreateSiteBody }) body: z.infer<typeof CreateSiteBody>) {
    return this.sites.create(t, body);
  }

  @Get(':siteId')
  @Route('Get a site', 'viewer', { status: 200, standardSchema: SiteResponse })
  get(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    return this.sites.get(t, id);
  }

  @Patch(':siteId')
  @Route('Update a site', 'operator', { status: 200, standardSchema: SiteResponse })
  update(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Body({ schema: UpdateSiteBody }) body: z.infer<typeof UpdateSiteBody>,
  ) {
    return this.sites.update(t, id, body);
  }

  @Delete(':siteId')
  @Route('Delete a site', 'admin')
  @HttpCode(204)
  async delete(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string): Promise<void> {
    await this.sites.delete(t, id);
  }
}
