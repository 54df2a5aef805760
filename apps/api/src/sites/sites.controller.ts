import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import type { z } from 'zod';
import { Idempotent } from '../common/idempotency';
import { Tenant, TenantAccess, type TenantContext } from '../common/request';
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

@ApiTags('sites')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/sites')
export class SitesController {
  constructor(private readonly sites: SitesService) {}

  @Get()
  @ApiOperation({ summary: 'List sites' })
  @TenantAccess('viewer')
  @ApiResponse({ status: 200, standardSchema: SitePage })
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
  @ApiOperation({ summary: 'Fleet counts by health' })
  @TenantAccess('viewer')
  @ApiResponse({ status: 200, standardSchema: SiteSummaryResponse })
  summary(@Tenant() t: TenantContext) {
    return this.sites.summary(t);
  }

  @Post()
  @ApiOperation({ summary: 'Create a site' })
  @TenantAccess('operator')
  @Idempotent()
  @ApiResponse({ status: 201, standardSchema: SiteResponse })
  create(@Tenant() t: TenantContext, @Body({ schema: CreateSiteBody }) body: z.infer<typeof CreateSiteBody>) {
    return this.sites.create(t, body);
  }

  @Get(':siteId')
  @ApiOperation({ summary: 'Get a site' })
  @TenantAccess('viewer')
  @ApiResponse({ status: 200, standardSchema: SiteResponse })
  get(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string) {
    return this.sites.get(t, id);
  }

  @Patch(':siteId')
  @ApiOperation({ summary: 'Update a site' })
  @TenantAccess('operator')
  @ApiResponse({ status: 200, standardSchema: SiteResponse })
  update(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Body({ schema: UpdateSiteBody }) body: z.infer<typeof UpdateSiteBody>,
  ) {
    return this.sites.update(t, id, body);
  }

  @Delete(':siteId')
  @ApiOperation({ summary: 'Delete a site' })
  @TenantAccess('admin')
  @HttpCode(204)
  async delete(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) id: string): Promise<void> {
    await this.sites.delete(t, id);
  }
}
