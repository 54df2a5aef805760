import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Tenant, type TenantContext } from '../common/request';
import { uuidParam } from '../common/validation';
import { TelemetryService } from './telemetry.service';
import { Route } from '../common/route';

const HistoryQuery = z.strictObject({ range: z.enum(['1h', '24h', '7d']).default('1h') });
const HistoryResponse = z.object({
  siteId: z.uuid(),
  range: z.enum(['1h', '24h', '7d']),
  stepSeconds: z.number(),
  points: z.array(
    z.object({
      at: z.string(),
      samples: z.number().optional(),
      cpuLoad: z.number().nullable(),
      cpuLoadMax: z.number().nullable().optional(),
      memoryUsed: z.number().nullable(),
      memoryTotal: z.number().nullable(),
      latencyMs: z.number().nullable(),
      rxBps: z.number().nullable(),
      rxBpsMax: z.number().nullable().optional(),
      txBps: z.number().nullable(),
      txBpsMax: z.number().nullable().optional(),
      tunnelBytesIn: z.number().nullable(),
      tunnelBytesOut: z.number().nullable(),
    }),
  ),
  interfaces: z.record(z.string(), z.array(z.object({ at: z.string(), rxBps: z.number(), txBps: z.number() }))),
});

/** Stored telemetry of one site, downsampled for the 1 h, 24 h and 7 d charts. */
@ApiTags('telemetry')
@ApiBearerAuth()
@Controller('api/v1/tenants/:tenantId/sites/:siteId/telemetry')
export class SiteTelemetryController {
  constructor(private readonly telemetry: TelemetryService) {}

  @Get()
  @Route("A site's telemetry history", 'viewer', { status: 200, standardSchema: HistoryResponse })
  history(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Query({ schema: HistoryQuery }) q: z.infer<typeof HistoryQuery>,
  ) {
    return this.telemetry.history(t, id, q.range);
  }
}
