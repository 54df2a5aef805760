import { Controller, Get, Header, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExcludeEndpoint, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../common/api-error';
import { Public, Tenant, type TenantContext } from '../common/request';
import { Route } from '../common/route';
import { ApiErrors, uuidParam } from '../common/validation';
import { OnboardingService, parsePollBody } from './onboarding.service';

const OnboardingCommand = z.object({
  command: z.string().describe('Paste into the router terminal (one line)'),
  url: z.string(),
  expiresAt: z.string(),
});
const Health = z.object({
  health: z.enum(['healthy', 'degraded', 'offline', 'unknown']),
  tunnelUp: z.boolean(),
  lastPollAt: z.string().nullable(),
  missedPolls: z.number().nullable(),
  onboardedAt: z.string().nullable(),
  routerosVersion: z.string().nullable(),
  board: z.string().nullable(),
  flapping: z
    .boolean()
    .describe('The tunnel flaps (FLAP_DISCONNECTS disconnects within FLAP_WINDOW): not repaired automatically'),
  flappingSince: z.string().nullable(),
});
const TOKEN_FILE = /^(bpo_[A-Za-z0-9_-]{20,64})\.rsc$/;

@ApiTags('onboarding')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1/tenants/:tenantId/sites/:siteId')
export class OnboardingController {
  constructor(private readonly onboarding: OnboardingService) {}

  /** A one-time command (expiring, single use) that onboards the site's router when pasted into its terminal. */
  @Post('onboarding')
  @Route('Onboarding command for a router', 'operator', { status: 201, standardSchema: OnboardingCommand })
  create(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) siteId: string) {
    return this.onboarding.createCommand(t, siteId);
  }

  /** Tunnel state and missed polls together. */
  @Get('health')
  @Route("A site's health (tunnel, polls)", 'viewer', { status: 200, standardSchema: Health })
  health(@Tenant() t: TenantContext, @Param('siteId', { schema: uuidParam }) siteId: string) {
    return this.onboarding.health(t, siteId);
  }
}

/** What routers fetch, outside the authenticated API: the script, the CA and the poll. */
@Controller('o')
export class RouterEndpointsController {
  constructor(private readonly onboarding: OnboardingService) {}

  @Get('ca.crt')
  @Public()
  @ApiExcludeEndpoint()
  @Header('content-type', 'application/x-pem-file')
  ca(): Promise<string> {
    return this.onboarding.caPem();
  }

  /** The deployment CA's revocation list, named in every gateway certificate (routers with `crl-use=yes` fetch it). */
  @Get('crl.pem')
  @Public()
  @ApiExcludeEndpoint()
  @Header('content-type', 'application/x-pem-file')
  @Header('cache-control', 'no-cache')
  crl(): Promise<string> {
    return this.onboarding.crlPem();
  }

  @Get(':file')
  @Public()
  @ApiExcludeEndpoint()
  async script(@Param('file') file: string, @Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply) {
    const token = TOKEN_FILE.exec(file)?.[1];
    if (!token) throw ApiError.notFound('onboarding command');
    const text = await this.onboarding.script(token, req.ip);
    void res.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store');
    return text;
  }

  @Post('poll/:siteId')
  @Public()
  @HttpCode(200)
  @ApiExcludeEndpoint()
  async poll(
    @Param('siteId', { schema: uuidParam }) siteId: string,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const text = await this.onboarding.poll(siteId, req.headers.authorization, parsePollBody(req.body), req.ip);
    void res.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store');
    return text;
  }
}
