import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { Idempotent } from '../common/idempotency';
import { CurrentActor, CurrentPrincipal, type Actor, type Principal } from '../common/request';
import { ApiErrors, pageOf, uuidParam } from '../common/validation';
import {
  CreateRegionBody,
  EnrollmentBody,
  EnrollmentTokenResponse,
  GatewayResponse,
  GatewaysQuery,
  ListRegionsQuery,
  RegionResponse,
  UpdateRegionBody,
} from './regions.schemas';
import { RegionsService } from './regions.service';
import { Route } from '../common/route';

@ApiTags('regions')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1')
export class RegionsController {
  constructor(private readonly regions: RegionsService) {}

  @Get('regions')
  @Route('List regions', 'platform', { status: 200, standardSchema: pageOf(RegionResponse) })
  list(@Query({ schema: ListRegionsQuery }) q: z.infer<typeof ListRegionsQuery>) {
    return this.regions.list(q);
  }

  @Post('regions')
  @Route('Create a region', 'platform', { status: 201, standardSchema: RegionResponse })
  @Idempotent()
  create(@CurrentActor() actor: Actor, @Body({ schema: CreateRegionBody }) body: z.infer<typeof CreateRegionBody>) {
    return this.regions.create(actor, body);
  }

  @Get('regions/:regionId')
  @Route('Get a region', 'platform', { status: 200, standardSchema: RegionResponse })
  get(@Param('regionId', { schema: uuidParam }) id: string) {
    return this.regions.get(id);
  }

  @Patch('regions/:regionId')
  @Route('Update a region', 'platform', { status: 200, standardSchema: RegionResponse })
  update(
    @CurrentActor() actor: Actor,
    @Param('regionId', { schema: uuidParam }) id: string,
    @Body({ schema: UpdateRegionBody }) body: z.infer<typeof UpdateRegionBody>,
  ) {
    return this.regions.update(actor, id, body);
  }

  @Delete('regions/:regionId')
  @Route('Delete a region', 'platform')
  @HttpCode(204)
  async delete(@CurrentActor() actor: Actor, @Param('regionId', { schema: uuidParam }) id: string): Promise<void> {
    await this.regions.delete(actor, id);
  }

  /** A one-time token a new gateway of this region enrolls with. Shown once. */
  @Post('regions/:regionId/enrollment-tokens')
  @Route('Create a gateway enrollment token', 'platform', { status: 201, standardSchema: EnrollmentTokenResponse })
  enrollmentToken(
    @CurrentActor() actor: Actor,
    @CurrentPrincipal() p: Principal,
    @Param('regionId', { schema: uuidParam }) id: string,
    @Body({ schema: EnrollmentBody }) body: z.infer<typeof EnrollmentBody>,
  ) {
    return this.regions.enrollmentToken(actor, p, id, body.ttlMinutes);
  }

  @Get('gateways')
  @Route('List gateways', 'platform', { status: 200, standardSchema: pageOf(GatewayResponse) })
  gateways(@Query({ schema: GatewaysQuery }) q: z.infer<typeof GatewaysQuery>) {
    return this.regions.gateways(q.regionId);
  }

  @Delete('gateways/:gatewayId')
  @Route('Revoke a gateway', 'platform')
  @HttpCode(204)
  async revoke(@CurrentActor() actor: Actor, @Param('gatewayId', { schema: uuidParam }) id: string): Promise<void> {
    await this.regions.revokeGateway(actor, id);
  }
}
