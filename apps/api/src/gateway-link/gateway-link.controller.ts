import { Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags, ApiOperation } from '@nestjs/swagger';
import type { z } from 'zod';
import { ApiError } from '../common/api-error';
import { CurrentPrincipal, GatewayAccess, Public, RequestMeta, type Principal } from '../common/request';
import { ApiErrors } from '../common/validation';
import { GatewayResponse } from '../regions/regions.schemas';
import { TelemetryService } from '../telemetry/telemetry.service';
import { GatewayEnrollmentService } from './gateway-enrollment.service';
import {
  BatchBody,
  CertificateBody,
  CertificateResponse,
  EnrollBody,
  EnrolledResponse,
  EventsBody,
  HeartbeatBody,
  IngestResponse,
  SitesQuery,
  SyncResponse,
  TargetsResponse,
} from './gateway-link.schemas';
import { GatewayLinkService } from './gateway-link.service';
import { PkiService } from './pki.service';

function gatewayOf(p: Principal): string {
  if (p.kind !== 'gateway') throw new ApiError('forbidden', 'gateways only');
  return p.gatewayId;
}

/**
 * Everything a gateway calls, in one place: enrollment and heartbeat, its server certificate,
 * the site credentials it authenticates tunnels with (deltas), the tunnel events it reports,
 * and telemetry (whom to poll, the samples). All but `enroll` authenticate with the
 * gateway's credential.
 */
@ApiTags('gateway-link')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/gateway')
export class GatewayLinkController {
  constructor(
    private readonly enrollment: GatewayEnrollmentService,
    private readonly link: GatewayLinkService,
    private readonly pki: PkiService,
    private readonly telemetry: TelemetryService,
  ) {}

  /** Trades a one-time enrollment token for this gateway's credential (shown once). */
  @Post('enroll')
  @ApiOperation({ summary: 'Enroll a gateway with a one-time token' })
  @Public()
  @ApiResponse({ status: 201, standardSchema: EnrolledResponse })
  enroll(
    @Body({ schema: EnrollBody }) body: z.infer<typeof EnrollBody>,
    @RequestMeta() meta: { ip: string; id: string },
  ) {
    return this.enrollment.enroll(body.token, body.name, meta.ip, meta.id);
  }

  /** The gateway is alive (and runs this version); answers its own record. */
  @Post('heartbeat')
  @ApiOperation({ summary: 'Gateway heartbeat' })
  @GatewayAccess()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: GatewayResponse })
  heartbeat(@CurrentPrincipal() p: Principal, @Body({ schema: HeartbeatBody }) body: z.infer<typeof HeartbeatBody>) {
    return this.enrollment.heartbeat(gatewayOf(p), body.version);
  }

  /**
   * Signs this gateway's server certificate (the key stays on the gateway). Called at
   * enrollment and when the certificate nears expiry; answers the CA chain and the CRL too.
   */
  @Post('certificate')
  @ApiOperation({ summary: "Sign a gateway's server certificate (gateways)" })
  @GatewayAccess()
  @HttpCode(201)
  @ApiResponse({ status: 201, standardSchema: CertificateResponse })
  certificate(
    @CurrentPrincipal() p: Principal,
    @Body({ schema: CertificateBody }) body: z.infer<typeof CertificateBody>,
  ) {
    return this.pki.issue(gatewayOf(p), body.csr);
  }

  /** Site credentials changed after revision `after` (verifiers, addresses, deactivations). */
  @Get('sites')
  @ApiOperation({ summary: 'Site credentials changed since a revision (gateways)' })
  @GatewayAccess()
  @ApiResponse({ status: 200, standardSchema: SyncResponse })
  sites(@CurrentPrincipal() p: Principal, @Query({ schema: SitesQuery }) q: z.infer<typeof SitesQuery>) {
    return this.link.sites(gatewayOf(p), q.after, q.limit);
  }

  /**
   * Tunnel connect, auth and teardown events; online/offline changes reach the portals.
   * Events for sites of another region are refused (`refused` counts them) and audited.
   */
  @Post('events')
  @ApiOperation({ summary: 'Report tunnel events (gateways)' })
  @GatewayAccess()
  @HttpCode(200)
  events(
    @CurrentPrincipal() p: Principal,
    @Body({ schema: EventsBody }) body: z.infer<typeof EventsBody>,
    @RequestMeta() meta: { ip: string; id: string },
  ) {
    const actor = {
      actorType: 'gateway' as const,
      actorId: gatewayOf(p),
      actorLabel: p.kind === 'gateway' ? p.name : null,
      sourceIp: meta.ip,
      requestId: meta.id,
    };
    return this.link.events(actor, body.events);
  }

  /** The sites this gateway polls for telemetry, with their router credentials. */
  @Get('telemetry/targets')
  @ApiOperation({ summary: 'Sites to poll for telemetry (gateways)' })
  @GatewayAccess()
  @ApiResponse({ status: 200, standardSchema: TargetsResponse })
  telemetryTargets(@CurrentPrincipal() p: Principal) {
    return this.telemetry.targets(gatewayOf(p));
  }

  /** A batch of samples; a malformed batch is refused whole (400, nothing stored). */
  @Post('telemetry')
  @ApiOperation({ summary: 'Store a batch of telemetry samples (gateways)' })
  @GatewayAccess()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: IngestResponse })
  telemetryIngest(@CurrentPrincipal() p: Principal, @Body({ schema: BatchBody }) body: z.infer<typeof BatchBody>) {
    return this.telemetry.ingest(gatewayOf(p), body.samples);
  }
}
