import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, uuidParam } from '../common/validation';
import { FirmwarePolicyBody, FirmwarePolicyResponse, SiteFirmwareResponse } from './firmware.schemas';
import { FirmwareService } from './firmware.service';

@ApiTags('firmware')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId')
export class FirmwareController {
  constructor(private readonly firmware: FirmwareService) {}

  @Get('firmware-policy')
  @Route('Get the firmware policy', 'viewer', { status: 200, standardSchema: FirmwarePolicyResponse })
  get(@Tenant() t: TenantContext) {
    return this.firmware.get(t);
  }

  /** Replaces the whole policy (audited). Upgrade jobs read it when they start. */
  @Put('firmware-policy')
  @Route('Set the firmware policy (channel and pinned version, per tenant and per tag)', 'admin', {
    status: 200,
    standardSchema: FirmwarePolicyResponse,
  })
  put(@Tenant() t: TenantContext, @Body({ schema: FirmwarePolicyBody }) body: z.infer<typeof FirmwarePolicyBody>) {
    return this.firmware.put(t, body);
  }

  @Get('sites/:siteId/firmware-policy')
  @Route("The firmware rule a site's upgrades follow", 'viewer', { status: 200, standardSchema: SiteFirmwareResponse })
  forSite(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) siteId: string) {
    return this.firmware.forSite(t, siteId);
  }
}
