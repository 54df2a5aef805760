import { Body, Controller, Get, HttpCode, Inject, Injectable, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { SiteStatusData } from '@backplane/contracts';
import { SiteSyncPage, TunnelEventBatch } from '@backplane/gateway-link';
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

/** The schemas of this link are shared with the gateway (@backplane/gateway-link). */
const EventsBody = TunnelEventBatch;
const SyncResponse = SiteSyncPage;

function gatewayOf(p: Principal): string {
  if (p.kind !== 'gateway') throw new ApiError('forbidden', 'gateways only');
  return p.gatewayId;
}

@Injectable()
export class GatewayLinkService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly key: Buffer,
    private readonly realtime: RealtimePublisher,
  ) {}

  async sites(after: number, limit: number): Promise<SiteSyncPage> {
    const rows = await this.deps.db.inPlatform((tx) =>
      tx.query<{ site_id: string; address: string; verifier: string | null; active: boolean; rev: string }>(
        `SELECT * FROM bp_gateway_site_sync($1, $2)`,
        [after, limit + 1],
      ),
    );
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
        const [row] = await tx.query<{
          stored: boolean;
          tenant_id: string | null;
          was_online: boolean | null;
          online: boolean | null;
        }>(`SELECT * FROM bp_tunnel_event_status($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [
          e.siteId,
          gatewayId,
          e.type,
          e.accepted ?? null,
          e.reason ?? null,
          e.sourceIp,
          e.bytesIn ?? null,
          e.bytesOut ?? null,
          e.durationSeconds ?? null,
          e.at,
        ]);
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
