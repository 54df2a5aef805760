import { Inject, Injectable } from '@nestjs/common';
import type { SiteStatusData } from '@backplane/contracts';
import type { SiteSyncPage } from '@backplane/gateway-link';
import { GatewayLinkRepository, TunnelEventsRepository } from '@backplane/db';
import { RealtimePublisher } from '@backplane/realtime';
import type { z } from 'zod';
import { API_DEPS, type ApiDeps } from '../deps';
import type { EventsBody } from './gateway-link.schemas';
import { VERIFIER_KEY } from './verifier-key';

/** Site credentials for gateways (deltas by revision) and the tunnel events they report. */
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
