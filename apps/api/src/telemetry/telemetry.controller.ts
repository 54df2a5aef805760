import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import { MAX_TELEMETRY_BATCH, TelemetryBatch } from '@backplane/gateway-link';
import { z } from 'zod';
import { ApiError } from '../common/api-error';
import {
  CurrentPrincipal,
  GatewayAccess,
  Tenant,
  TenantAccess,
  type Principal,
  type TenantContext,
} from '../common/request';
import { uuidParam } from '../common/validation';
import { TelemetryService } from './telemetry.service';

/** Largest batch a gateway may send (the gateway flushes at this size). */
export const MAX_BATCH = MAX_TELEMETRY_BATCH;

/** Shared with the gateway (@backplane/gateway-link): a malformed batch is refused whole. */
const BatchBody = TelemetryBatch;
const IngestResponse = z.object({ stored: z.number(), ignored: z.number() });
const TargetsResponse = z.object({
  targets: z.array(
    z.object({ siteId: z.uuid(), credentials: z.object({ username: z.string(), password: z.string() }) }),
  ),
});
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

function gatewayOf(p: Principal): string {
  if (p.kind !== 'gateway') throw new ApiError('forbidden', 'gateways only');
  return p.gatewayId;
}

/** Gateways fetch whom to poll (with router credentials) and push samples here. */
@ApiTags('gateway-link')
@ApiBearerAuth()
@Controller('api/v1/gateway/telemetry')
export class GatewayTelemetryController {
  constructor(private readonly telemetry: TelemetryService) {}

  @Get('targets')
  @GatewayAccess()
  @ApiResponse({ status: 200, standardSchema: TargetsResponse })
  targets(@CurrentPrincipal() p: Principal) {
    return this.telemetry.targets(gatewayOf(p));
  }

  /** A batch of samples; a malformed batch is refused whole (400, nothing stored). */
  @Post()
  @GatewayAccess()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: IngestResponse })
  ingest(@CurrentPrincipal() p: Principal, @Body({ schema: BatchBody }) body: z.infer<typeof BatchBody>) {
    return this.telemetry.ingest(gatewayOf(p), body.samples);
  }
}

/** Stored telemetry of one site, downsampled for the 1 h, 24 h and 7 d charts. */
@ApiTags('telemetry')
@ApiBearerAuth()
@Controller('api/v1/tenants/:tenantId/sites/:siteId/telemetry')
export class SiteTelemetryController {
  constructor(private readonly telemetry: TelemetryService) {}

  @Get()
  @TenantAccess('viewer')
  @ApiResponse({ status: 200, standardSchema: HistoryResponse })
  history(
    @Tenant() t: TenantContext,
    @Param('siteId', { schema: uuidParam }) id: string,
    @Query({ schema: HistoryQuery }) q: z.infer<typeof HistoryQuery>,
  ) {
    return this.telemetry.history(t, id, q.range);
  }
}
