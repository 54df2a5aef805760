import { Inject, Injectable } from '@nestjs/common';
import type { SiteChangedData } from '@backplane/contracts';
import { SitesRepository, type SiteFilter, type SiteInput, type PageRequest } from '@backplane/db';
import { RealtimePublisher } from '@backplane/realtime';
import type { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { SiteListCache } from './site-list-cache';
import { toSiteResponse, type CreateSiteBody, type SiteOut, type UpdateSiteBody } from './sites.dto';

type SiteListPage = { items: SiteOut[]; nextCursor: string | null };

@Injectable()
export class SitesService {
  /** Tells portals of the tenant (every api replica, through Redis) that a site was added, changed or removed. */

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly sites: SitesRepository,
    private readonly audit: AuditService,
    private readonly realtime: RealtimePublisher,
    private readonly listCache: SiteListCache,
  ) {}

  /**
   * After the commit: a lost event costs a portal a stale row until its next reload, never the
   * change itself, so a Redis hiccup is logged and not turned into a failed request.
   */
  private async changed(t: TenantContext, siteId: string, change: SiteChangedData['change']): Promise<void> {
    try {
      await this.realtime.publish(t.scope.tenantId, { type: 'site.changed', data: { siteId, change } });
    } catch (err) {
      this.deps.logger.warn({ err, siteId, change }, 'site.changed not published');
    }
  }

  /** Default poll interval of sites without their own: part of the health rule. */
  private get pollInterval(): number {
    return this.deps.config.POLL_INTERVAL;
  }

  /** Counts by health (online, degraded, offline, pending) and region, for the fleet overview. */
  async summary(t: TenantContext) {
    return this.deps.db.inTenant(t.scope, (tx) => this.sites.summary(tx, this.pollInterval));
  }

  async create(t: TenantContext, body: z.infer<typeof CreateSiteBody>): Promise<SiteOut> {
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const row = await this.sites.create(
        tx,
        {
          name: body.name,
          notes: body.notes,
          tags: [...new Set(body.tags)],
          address: body.address ?? null,
          latitude: body.latitude ?? null,
          longitude: body.longitude ?? null,
        },
        this.pollInterval,
      );
      const out = toSiteResponse(row);
      await this.audit.record(tx, t.actor, {
        action: 'site.created',
        targetType: 'site',
        targetId: row.id,
        after: out,
      });
      return out;
    });
    await this.changed(t, out.id, 'created');
    return out;
  }

  /** A page, from the per-tenant response cache when nothing happened in the tenant since (ADR 0076). */
  async list(t: TenantContext, page: PageRequest, filter: SiteFilter): Promise<SiteListPage> {
    const key = this.listCache.key(t, [page.limit, page.cursor, filter.q, filter.tag, filter.online, filter.health]);
    const hit = key ? this.listCache.get<SiteListPage>(t, key) : undefined;
    if (hit) return hit;
    const res = await this.deps.db.readTenant(t.scope, (tx) => this.sites.list(tx, page, filter, this.pollInterval));
    const out: SiteListPage = { items: res.items.map(toSiteResponse), nextCursor: res.nextCursor };
    if (key) this.listCache.set(t, key, out);
    return out;
  }

  async get(t: TenantContext, id: string): Promise<SiteOut> {
    const row = await this.deps.db.inTenant(t.scope, (tx) => this.sites.get(tx, id, this.pollInterval));
    if (!row) throw ApiError.notFound('site');
    return toSiteResponse(row);
  }

  async update(t: TenantContext, id: string, body: z.infer<typeof UpdateSiteBody>): Promise<SiteOut> {
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.sites.get(tx, id, this.pollInterval);
      if (!before) throw ApiError.notFound('site');
      const patch: Partial<SiteInput> = { ...body, ...(body.tags ? { tags: [...new Set(body.tags)] } : {}) };
      const row = await this.sites.update(tx, id, patch, this.pollInterval);
      if (!row) throw ApiError.notFound('site');
      const out = toSiteResponse(row);
      await this.audit.record(tx, t.actor, {
        action: 'site.updated',
        targetType: 'site',
        targetId: id,
        before: toSiteResponse(before),
        after: out,
      });
      return out;
    });
    await this.changed(t, id, 'updated');
    return out;
  }

  async delete(t: TenantContext, id: string): Promise<void> {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      const row = await this.sites.delete(tx, id, this.pollInterval);
      if (!row) throw ApiError.notFound('site');
      await this.audit.record(tx, t.actor, {
        action: 'site.deleted',
        targetType: 'site',
        targetId: id,
        before: toSiteResponse(row),
      });
    });
    await this.changed(t, id, 'deleted');
  }
}
