import { Inject, Injectable } from '@nestjs/common';
import { GatewayLinkRepository, SitesRepository } from '@backplane/db';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { GEO_LOCATOR, GeoLocator, pickRegion, type RegionCandidate, type RegionChoice } from './region-selector';

export interface OnboardingRegion extends RegionCandidate {
  readonly enabled: boolean;
  readonly publicHost: string;
  readonly publicPort: number;
}

export interface OnboardingChoice {
  readonly region: OnboardingRegion;
  /** kept (its region is up), moved (its region is down), nearest (new site), or one of those with every region down. */
  readonly reason: 'kept' | 'moved' | 'nearest' | 'kept-all-down' | 'nearest-all-down';
  readonly skipped?: readonly string[];
}

/** Picks and records a site's region from the public address its router comes from. */
@Injectable()
export class RegionSelectionService {
  private readonly link = new GatewayLinkRepository();
  private readonly sites = new SitesRepository();

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(GEO_LOCATOR) private readonly geo: GeoLocator,
  ) {}

  /** Regions with their health: enabled and at least one unrevoked gateway heartbeating recently. */
  async candidates(): Promise<OnboardingRegion[]> {
    const rows: OnboardingRegion[] = await this.deps.db.inPlatform((tx) =>
      this.link.regionCandidates(tx, this.deps.config.GATEWAY_DOWN_AFTER),
    );
    return rows;
  }

  async choose(publicIp: string): Promise<RegionChoice | null> {
    return pickRegion(this.geo.locate(publicIp), await this.candidates());
  }

  /**
   * The region a router onboarding from `publicIp` is told to dial: the site keeps the
   * region it already has unless that one is down; otherwise the nearest healthy region by
   * GeoIP (passing over regions that are down). With no healthy region at all, the site keeps
   * its enabled region or gets the nearest enabled one, so its router connects once a gateway
   * is back. Null when no region is enabled.
   */
  async forOnboarding(currentRegionId: string | null, publicIp: string): Promise<OnboardingChoice | null> {
    const all = await this.candidates();
    const current = all.find((r) => r.id === currentRegionId);
    if (current?.healthy) return { region: current, reason: 'kept' };
    const point = this.geo.locate(publicIp);
    const byId = new Map(all.map((r) => [r.id, r]));
    const healthy = pickRegion(point, all);
    if (healthy)
      return { region: byId.get(healthy.regionId)!, reason: current ? 'moved' : 'nearest', skipped: healthy.skipped };
    if (current?.enabled) return { region: current, reason: 'kept-all-down' };
    const enabled = all.filter((r) => r.enabled).map((r) => ({ ...r, healthy: true }));
    const fallback = pickRegion(point, enabled);
    return fallback ? { region: byId.get(fallback.regionId)!, reason: 'nearest-all-down' } : null;
  }

  async assign(t: TenantContext, siteId: string, publicIp: string): Promise<RegionChoice> {
    const choice = await this.choose(publicIp);
    if (!choice) throw new ApiError('unavailable', 'no healthy region', [{ path: 'reason', message: 'no_region' }]);
    const found = await this.deps.db.inTenant(t.scope, (tx) => this.sites.setRegion(tx, siteId, choice.regionId));
    if (!found) throw ApiError.notFound('site');
    return choice;
  }
}
