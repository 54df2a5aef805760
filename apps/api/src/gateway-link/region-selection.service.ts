import { Inject, Injectable } from '@nestjs/common';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { GEO_LOCATOR, GeoLocator, pickRegion, type RegionCandidate, type RegionChoice } from './region-selector';

/** Picks and records a site's region from the public address its router comes from. */
@Injectable()
export class RegionSelectionService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(GEO_LOCATOR) private readonly geo: GeoLocator,
  ) {}

  /** Regions with their health: enabled and at least one unrevoked gateway heartbeating recently. */
  async candidates(): Promise<RegionCandidate[]> {
    const rows = await this.deps.db.inPlatform((tx) =>
      tx.query<{ id: string; slug: string; latitude: number; longitude: number; healthy: boolean }>(
        `SELECT r.id, r.slug, r.latitude, r.longitude,
                r.enabled AND EXISTS (
                  SELECT 1 FROM gateways g WHERE g.region_id = r.id AND g.revoked_at IS NULL
                     AND g.last_heartbeat_at > now() - make_interval(secs => $1)) AS healthy
           FROM regions r`,
        [this.deps.config.GATEWAY_DOWN_AFTER],
      ),
    );
    return rows;
  }

  async choose(publicIp: string): Promise<RegionChoice | null> {
    return pickRegion(this.geo.locate(publicIp), await this.candidates());
  }

  async assign(t: TenantContext, siteId: string, publicIp: string): Promise<RegionChoice> {
    const choice = await this.choose(publicIp);
    if (!choice) throw new ApiError('unavailable', 'no healthy region', [{ path: 'reason', message: 'no_region' }]);
    const rows = await this.deps.db.inTenant(t.scope, (tx) =>
      tx.query(
        `UPDATE sites SET region_id = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
        [siteId, choice.regionId],
      ),
    );
    if (!rows.length) throw ApiError.notFound('site');
    return choice;
  }
}
