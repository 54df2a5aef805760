import { Body, Controller, Delete, Get, HttpCode, Inject, Injectable, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RegionsRepository, type GatewayRow, type RegionRow } from '@backplane/db';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { newSecret, TokenService } from '../auth/tokens';
import { ApiError } from '../common/api-error';
import { Idempotent } from '../common/idempotency';
import {
  CurrentActor,
  CurrentPrincipal,
  GatewayAccess,
  PlatformOperator,
  Public,
  RequestMeta,
  type Actor,
  type Principal,
} from '../common/request';
import { cursorQuery, limitQuery, pageOf, text, uuidParam, ApiErrors } from '../common/validation';
import { API_DEPS, type ApiDeps } from '../deps';
import { PkiService } from '../gateway-link/pki.service';

const host = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.-]+$|^\[?[0-9a-fA-F:.]+\]?$/, 'must be a DNS name or an IP address');
const RegionFields = {
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case slug like eu-central'),
  name: text(200),
  publicHost: host,
  publicPort: z.number().int().min(1).max(65535),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  enabled: z.boolean(),
};
const CreateRegionBody = z.strictObject({
  ...RegionFields,
  publicPort: RegionFields.publicPort.default(8443),
  enabled: RegionFields.enabled.default(true),
});
const UpdateRegionBody = z
  .strictObject(
    Object.fromEntries(Object.entries(RegionFields).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof typeof RegionFields]: z.ZodOptional<(typeof RegionFields)[K]>;
    },
  )
  .refine((v) => Object.keys(v).length > 0, { message: 'nothing to update' });
const ListQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });
const GatewaysQuery = z.strictObject({ regionId: z.uuid().optional() });
const EnrollmentBody = z
  .strictObject({
    ttlMinutes: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 60)
      .default(60),
  })
  .prefault({});
const EnrollBody = z.strictObject({ token: z.string().min(10).max(512), name: text(200) });
const HeartbeatBody = z.strictObject({ version: z.string().min(1).max(100).optional() }).prefault({});

const RegionResponse = z.object({
  id: z.uuid(),
  slug: z.string(),
  name: z.string(),
  publicHost: z.string(),
  publicPort: z.number().int(),
  latitude: z.number(),
  longitude: z.number(),
  enabled: z.boolean(),
  health: z.object({
    healthy: z.boolean().nullable().describe('From the periodic region health check; null before the first one'),
    checkedAt: z.iso.datetime().nullable(),
    unhealthySince: z.iso.datetime().nullable(),
  }),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const GatewayResponse = z.object({
  id: z.uuid(),
  regionId: z.uuid(),
  name: z.string(),
  status: z.enum(['up', 'down', 'revoked']),
  enrolledAt: z.iso.datetime(),
  lastHeartbeatAt: z.iso.datetime().nullable(),
  version: z.string().nullable(),
});
const EnrollmentTokenResponse = z.object({ id: z.uuid(), token: z.string(), expiresAt: z.iso.datetime() });
const EnrolledResponse = z.object({ gateway: GatewayResponse, credential: z.string() });

function toRegion(r: RegionRow): z.infer<typeof RegionResponse> {
  const { healthy, healthCheckedAt, unhealthySince, ...rest } = r;
  return {
    ...rest,
    health: {
      healthy,
      checkedAt: healthCheckedAt?.toISOString() ?? null,
      unhealthySince: unhealthySince?.toISOString() ?? null,
    },
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}
function toGateway(g: GatewayRow): z.infer<typeof GatewayResponse> {
  return {
    id: g.id,
    regionId: g.regionId,
    name: g.name,
    status: g.revokedAt ? 'revoked' : g.up ? 'up' : 'down',
    enrolledAt: g.enrolledAt.toISOString(),
    lastHeartbeatAt: g.lastHeartbeatAt?.toISOString() ?? null,
    version: g.version,
  };
}

@Injectable()
export class RegionsService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly regions: RegionsRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditService,
    private readonly pki: PkiService,
  ) {}

  private get downAfter(): number {
    return this.deps.config.GATEWAY_DOWN_AFTER;
  }

  create(actor: Actor, body: z.infer<typeof CreateRegionBody>) {
    return this.deps.db.inPlatform(async (tx) => {
      const out = toRegion(await this.regions.create(tx, body));
      await this.audit.record(tx, actor, {
        action: 'region.created',
        targetType: 'region',
        targetId: out.id,
        after: out,
      });
      return out;
    });
  }

  async list(q: z.infer<typeof ListQuery>) {
    const res = await this.deps.db.inPlatform((tx) => this.regions.list(tx, q));
    return { items: res.items.map(toRegion), nextCursor: res.nextCursor };
  }

  async get(id: string) {
    const row = await this.deps.db.inPlatform((tx) => this.regions.get(tx, id));
    if (!row) throw ApiError.notFound('region');
    return toRegion(row);
  }

  update(actor: Actor, id: string, body: z.infer<typeof UpdateRegionBody>) {
    return this.deps.db.inPlatform(async (tx) => {
      const before = await this.regions.get(tx, id);
      if (!before) throw ApiError.notFound('region');
      const out = toRegion((await this.regions.update(tx, id, body))!);
      await this.audit.record(tx, actor, {
        action: 'region.updated',
        targetType: 'region',
        targetId: id,
        before: toRegion(before),
        after: out,
      });
      return out;
    });
  }

  delete(actor: Actor, id: string) {
    return this.deps.db.inPlatform(async (tx) => {
      const res = await this.regions.delete(tx, id);
      if (res === 'in_use') throw new ApiError('conflict', 'the region still has gateways; revoke them first');
      if (!res) throw ApiError.notFound('region');
      await this.audit.record(tx, actor, {
        action: 'region.deleted',
        targetType: 'region',
        targetId: id,
        before: toRegion(res),
      });
    });
  }

  enrollmentToken(actor: Actor, principal: Principal, regionId: string, ttlMinutes: number) {
    const token = newSecret('bpe');
    const expiresAt = new Date(Date.now() + ttlMinutes * 60_000);
    return this.deps.db.inPlatform(async (tx) => {
      if (!(await this.regions.get(tx, regionId))) throw ApiError.notFound('region');
      const id = await this.regions.addEnrollmentToken(
        tx,
        regionId,
        this.tokens.hash(token),
        expiresAt,
        principal.kind === 'user' ? principal.userId : '',
      );
      await this.audit.record(tx, actor, {
        action: 'gateway_enrollment_token.created',
        targetType: 'region',
        targetId: regionId,
        after: { tokenId: id, expiresAt: expiresAt.toISOString() },
      });
      return { id, token, expiresAt: expiresAt.toISOString() };
    });
  }

  async gateways(regionId: string | undefined) {
    const rows = await this.deps.db.inPlatform((tx) => this.regions.listGateways(tx, regionId, this.downAfter));
    return { items: rows.map(toGateway), nextCursor: null };
  }

  revokeGateway(actor: Actor, id: string) {
    return this.deps.db.inPlatform(async (tx) => {
      const row = await this.regions.revokeGateway(tx, id, this.downAfter);
      if (!row) throw ApiError.notFound('gateway');
      // Its server certificates go on the CRL in the same transaction.
      const revokedCertificates = await this.pki.revokeGateway(tx, id);
      await this.audit.record(tx, actor, {
        action: 'gateway.revoked',
        targetType: 'gateway',
        targetId: id,
        after: { revokedCertificates },
      });
    });
  }

  enroll(token: string, name: string, sourceIp: string, requestId: string) {
    const credential = newSecret('bpg');
    return this.deps.db.inPlatform(async (tx) => {
      const regionId = await this.regions.consumeEnrollmentToken(tx, this.tokens.hash(token));
      if (!regionId) throw new ApiError('unauthorized', 'enrollment token is not valid, expired or already used');
      const gw = await this.regions.createGateway(
        tx,
        { regionId, name, credentialHash: this.tokens.hash(credential) },
        this.downAfter,
      );
      await this.audit.record(
        tx,
        { actorType: 'gateway', actorId: gw.id, actorLabel: name, sourceIp, requestId },
        { action: 'gateway.enrolled', targetType: 'gateway', targetId: gw.id, after: { regionId, name } },
      );
      return { gateway: toGateway(gw), credential };
    });
  }

  async heartbeat(gatewayId: string, version: string | undefined) {
    const row = await this.deps.db.inPlatform((tx) =>
      this.regions.heartbeat(tx, gatewayId, version ?? null, this.downAfter),
    );
    if (!row) throw new ApiError('unauthorized', 'gateway credential is not valid');
    return toGateway(row);
  }
}

@ApiTags('regions')
@ApiBearerAuth()
@ApiErrors()
@Controller('api/v1')
export class RegionsController {
  constructor(private readonly regions: RegionsService) {}

  @Get('regions')
  @PlatformOperator()
  @ApiResponse({ status: 200, standardSchema: pageOf(RegionResponse) })
  list(@Query({ schema: ListQuery }) q: z.infer<typeof ListQuery>) {
    return this.regions.list(q);
  }

  @Post('regions')
  @PlatformOperator()
  @Idempotent()
  @ApiResponse({ status: 201, standardSchema: RegionResponse })
  create(@CurrentActor() actor: Actor, @Body({ schema: CreateRegionBody }) body: z.infer<typeof CreateRegionBody>) {
    return this.regions.create(actor, body);
  }

  @Get('regions/:regionId')
  @PlatformOperator()
  @ApiResponse({ status: 200, standardSchema: RegionResponse })
  get(@Param('regionId', { schema: uuidParam }) id: string) {
    return this.regions.get(id);
  }

  @Patch('regions/:regionId')
  @PlatformOperator()
  @ApiResponse({ status: 200, standardSchema: RegionResponse })
  update(
    @CurrentActor() actor: Actor,
    @Param('regionId', { schema: uuidParam }) id: string,
    @Body({ schema: UpdateRegionBody }) body: z.infer<typeof UpdateRegionBody>,
  ) {
    return this.regions.update(actor, id, body);
  }

  @Delete('regions/:regionId')
  @PlatformOperator()
  @HttpCode(204)
  async delete(@CurrentActor() actor: Actor, @Param('regionId', { schema: uuidParam }) id: string): Promise<void> {
    await this.regions.delete(actor, id);
  }

  /** A one-time token a new gateway of this region enrolls with. Shown once. */
  @Post('regions/:regionId/enrollment-tokens')
  @PlatformOperator()
  @ApiResponse({ status: 201, standardSchema: EnrollmentTokenResponse })
  enrollmentToken(
    @CurrentActor() actor: Actor,
    @CurrentPrincipal() p: Principal,
    @Param('regionId', { schema: uuidParam }) id: string,
    @Body({ schema: EnrollmentBody }) body: z.infer<typeof EnrollmentBody>,
  ) {
    return this.regions.enrollmentToken(actor, p, id, body.ttlMinutes);
  }

  @Get('gateways')
  @PlatformOperator()
  @ApiResponse({ status: 200, standardSchema: pageOf(GatewayResponse) })
  gateways(@Query({ schema: GatewaysQuery }) q: z.infer<typeof GatewaysQuery>) {
    return this.regions.gateways(q.regionId);
  }

  @Delete('gateways/:gatewayId')
  @PlatformOperator()
  @HttpCode(204)
  async revoke(@CurrentActor() actor: Actor, @Param('gatewayId', { schema: uuidParam }) id: string): Promise<void> {
    await this.regions.revokeGateway(actor, id);
  }
}

/** Called by gateways themselves. */
@ApiTags('gateway-link')
@ApiErrors()
@Controller('api/v1/gateway')
export class GatewayLinkController {
  constructor(private readonly regions: RegionsService) {}

  /** Trades a one-time enrollment token for this gateway's credential (shown once). */
  @Post('enroll')
  @Public()
  @ApiResponse({ status: 201, standardSchema: EnrolledResponse })
  enroll(
    @Body({ schema: EnrollBody }) body: z.infer<typeof EnrollBody>,
    @RequestMeta() meta: { ip: string; id: string },
  ) {
    return this.regions.enroll(body.token, body.name, meta.ip, meta.id);
  }

  @Post('heartbeat')
  @GatewayAccess()
  @ApiBearerAuth()
  @HttpCode(200)
  @ApiResponse({ status: 200, standardSchema: GatewayResponse })
  heartbeat(@CurrentPrincipal() p: Principal, @Body({ schema: HeartbeatBody }) body: z.infer<typeof HeartbeatBody>) {
    if (p.kind !== 'gateway') throw new ApiError('forbidden', 'gateways only');
    return this.regions.heartbeat(p.gatewayId, body.version);
  }
}
