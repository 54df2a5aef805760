import { Inject, Injectable } from '@nestjs/common';
import type { SiteStatusData } from '@backplane/contracts';
import type { SiteSyncPage } from '@backplane/gateway-link';
import { GatewayLinkRepository, TunnelEventsRepository } from '@backplane/db';
import { RealtimePublisher } from '@backplane/realtime';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import type { Actor } from '../common/request';
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
    private readonly audit: AuditService,
  ) {}

  /** Only sites of the gateway's region, and sites without a region yet (ADR 0052). */
  async sites(gatewayId: string, after: number, limit: number): Promise<SiteSyncPage> {
    const rows = await this.deps.db.inPlatform((tx) => this.link.siteSync(tx, gatewayId, after, limit + 1));
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

  /**
   * Stores a gateway's tunnel events. Events for sites of another region are refused (nothing
   * stored, the site's state unchanged) and recorded in the platform audit log, one entry per
   * call naming up to 50 of the sites.
   */
  async events(
    gateway: Actor & { actorId: string },
    events: z.infer<typeof EventsBody>['events'],
  ): Promise<{ stored: number; refused: number }> {
    const gatewayId = gateway.actorId;
    let stored = 0;
    const refused: string[] = [];
    const changes: { tenantId: string; data: SiteStatusData }[] = [];
    await this.deps.db.inPlatform(async (tx) => {
      for (const e of events) {
        if (!e.siteId) continue; // not tied to a site (undecodable user): only in the gateway log
        const row = await this.tunnelEvents.record(tx, gatewayId, { ...e, siteId: e.siteId });
        if (row?.refused) {
          refused.push(e.siteId);
          continue;
        }
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
      if (refused.length) {
        this.deps.logger.warn(
          { gatewayId, refused: refused.length },
          'gateway reported events for sites outside its region',
        );
        await this.audit.record(tx, gateway, {
          action: 'gateway.events_refused',
          targetType: 'gateway',
          targetId: gatewayId,
          after: { reason: 'site_outside_region', count: refused.length, siteIds: [...new Set(refused)].slice(0, 50) },
        });
      }
    });
    // after the commit, in order: portals see each online/offline change
    for (const c of changes) await this.realtime.publish(c.tenantId, { type: 'site.status', data: c.data });
    return { stored, refused: refused.length };
  }
}
