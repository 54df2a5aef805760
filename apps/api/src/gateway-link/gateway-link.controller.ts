import { Body, Controller, Get, HttpCode, Inject, Injectable, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { SiteStatusData, SiteSyncPage } from '@backplane/contracts';
import { GatewayLinkRepository, TunnelEventsRepository } from '@backplane/db';
import { RealtimePublisher } from '@backplane/realtime';
import { z } from 'zod';
import { ApiError } from '../common/api-error';
import { CurrentPrincipal, GatewayAccess, type Principal } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { VERIFIER_KEY } from './verifier-key';

const SitesQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(5000),
});

const EventBody = z.strictObject({
  type: z.enum(['connect', 'auth', 'disconnect']),
  siteId: z.uuid().optional(),
  gatewayId: z.string().optional(),
  sourceIp: z.string().max(64),
  at: z.iso.datetime(),
  accepted: z.boolean().optional(),
  reason: z.string().max(200).optional(),
  bytesIn: z.number().int().min(0).optional(),
  bytesOut: z.number().int().min(0).optional(),
  durationSeconds: z.number().int().min(0).optional(),
});
const EventsBody = z.strictObject({ events: z.array(EventBody).max(1000) });

const SyncResponse = z.object({
  verifierKey: z.string(),
  items: z.array(
    z.object({
      siteId: z.uuid(),
      address: z.string(),
      verifier: z.string().nullable(),
      active: z.boolean(),
      rev: z.number(),
    }),
  ),
  next: z.number(),
  more: z.boolean(),
});

function gatewayOf(p: Principal): string {
  if (p.kind !== 'gateway') throw new ApiError('forbidden', 'gateways only');
  return p.gatewayId;
}

@Injectable()
export class GatewayLinkService {
  private readonly link = new GatewayLinkRepository();
  private readonly tunnelEvents = new TunnelEventsRepository();

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly key: Buffer,
    private readonly realtime: RealtimePublisher,
  ) {}

  async sites(after: number, limit: number): Promise<SiteSyncPage> {
    const rows = await this.deps.db.inPlatform((tx) => this.link.siteSync(tx, after, limit + 1));
    const more = rows.length > limit;
    const items = rows.slice(0, limit).map((r) => ({
      siteId: r.site_id,
      address: r.address,
      verifier: r.verifier,
      active: r.active,
      rev: Number(r.rev),
    }));
    return {
      verifierKey: this.key.toString('base64'),
      items,
      next: items.length ? items[items.length - 1]!.rev : after,
      more,
    };
  }

  async events(gatewayId: string, events: z.infer<typeof EventsBody>['events']): Promise<{ stored: number }> {
    let stored = 0;
    const changes: { tenantId: string; data: SiteStatusData }[] = [];
    await this.deps.db.inPlatform(async (tx) => {
      for (const e of events) {
        if (!e.siteId) continue; // not tied to a site (undecodable user): only in the gateway log
        const row = await this.tunnelEvents.record(tx, gatewayId, { ...e, siteId: e.siteId });
        if (!row?.stored) continue;
        stored++;
        if (row.tenant_id && row.online !== null && row.online !== row.was_online) {
          changes.push({
            tenantId: row.tenant_id,
            data: {
              siteId: e.siteId,
              online: row.online,
              health: row.online ? 'online' : 'offline',
              gatewayId,
              sourceIp: e.sourceIp,
              ...(row.online ? { connectedSince: e.at } : { reason: e.reason ?? 'disconnect' }),
            },
          });
        }
      }
    });
    // after the commit, in order: portals see each online/offline change
    for (const c of changes) await this.realtime.publish(c.tenantId, { type: 'site.status', data: c.data });
    return { stored };
  }
}

/** Gateways pull site credentials (deltas) and push tunnel events here. */
@ApiTags('gateway-link')
@ApiBearerAuth()
@Controller('api/v1/gateway')
export class GatewaySitesController {
  constructor(private readonly link: GatewayLinkService) {}

  @Get('sites')
  @GatewayAccess()
  @ApiResponse({ status: 200, standardSchema: SyncResponse })
  sites(@CurrentPrincipal() p: Principal, @Query({ schema: SitesQuery }) q: z.infer<typeof SitesQuery>) {
    gatewayOf(p);
    return this.link.sites(q.after, q.limit);
  }

  @Post('events')
  @GatewayAccess()
  @HttpCode(200)
  events(@CurrentPrincipal() p: Principal, @Body({ schema: EventsBody }) body: z.infer<typeof EventsBody>) {
    return this.link.events(gatewayOf(p), body.events);
  }
}
