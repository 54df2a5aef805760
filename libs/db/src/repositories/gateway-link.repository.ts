import { query } from '../sql';
import type { PlatformTx } from '../tenancy';

/** One site as the gateways sync it (verifier null: no tunnel credential yet). */
export interface SiteSyncRow {
  site_id: string;
  address: string;
  verifier: string | null;
  active: boolean;
  rev: string;
}

/** A site marked online, with its gateway's liveness (offline sweep). */
export interface OnlineSiteRow {
  site_id: string;
  tenant_id: string;
  gateway_id: string | null;
  /** As text: it goes back to {@link GatewayLinkRepository.markSitesLost} unchanged (a JS Date would drop the microseconds). */
  last_seen_at: string | null;
  gateway_alive: boolean;
}

/** A region's health as the check just set it (`was`: before; null before the first check). */
export interface RegionHealthRow {
  id: string;
  slug: string;
  healthy: boolean;
  was: boolean | null;
}

/** A region as onboarding chooses among them. */
export interface RegionCandidateRow {
  id: string;
  slug: string;
  latitude: number;
  longitude: number;
  enabled: boolean;
  publicHost: string;
  publicPort: number;
  healthy: boolean;
}

/** Platform-wide reads and writes of the gateway link: site sync, offline sweep, region health. */
export class GatewayLinkRepository {
  /**
   * A transaction-scoped advisory lock named by a string (`hashtext(name)`), without waiting:
   * false when another transaction holds it.
   */
  async tryLock(tx: PlatformTx, name: string): Promise<boolean> {
    const [row] = await query<{ ok: boolean }>(tx, `SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok`, [name]);
    return row?.ok === true;
  }

  /**
   * Site changes after revision `after`, at most `limit`, that gateway `gatewayId` may know:
   * sites of its region and sites without a region yet (none for a revoked gateway).
   */
  async siteSync(tx: PlatformTx, gatewayId: string, after: number, limit: number): Promise<SiteSyncRow[]> {
    return query<SiteSyncRow>(tx, `SELECT * FROM bp_gateway_site_sync($1, $2, $3)`, [gatewayId, after, limit]);
  }

  /** Sites marked online; a gateway is alive when it heartbeated within `downAfterSeconds`. */
  async onlineSites(tx: PlatformTx, downAfterSeconds: number): Promise<OnlineSiteRow[]> {
    return query<OnlineSiteRow>(
      tx,
      `SELECT site_id, tenant_id, gateway_id, last_seen_at::text AS last_seen_at, gateway_alive
         FROM bp_online_sites($1)`,
      [downAfterSeconds],
    );
  }

  /** Marks sites offline unless they were seen again since `lastSeenAt`; the ones it marked. */
  async markSitesLost(
    tx: PlatformTx,
    sites: readonly { site_id: string; gateway_id: string | null; last_seen_at: string | null }[],
    reason: string,
  ): Promise<{ site_id: string; tenant_id: string }[]> {
    return query<{ site_id: string; tenant_id: string }>(
      tx,
      `SELECT * FROM bp_sites_lost($1::uuid[], $2::uuid[], $3::timestamptz[], $4)`,
      [sites.map((s) => s.site_id), sites.map((s) => s.gateway_id), sites.map((s) => s.last_seen_at), reason],
    );
  }

  /**
   * Region health: enabled with at least one unrevoked gateway heartbeating within
   * `downAfterSeconds`. Stores it for every region and returns old and new.
   */
  async updateRegionHealth(tx: PlatformTx, downAfterSeconds: number): Promise<RegionHealthRow[]> {
    return query<RegionHealthRow>(
      tx,
      `WITH h AS (
         SELECT r.id, r.healthy AS was,
                r.enabled AND EXISTS (
                  SELECT 1 FROM gateways g WHERE g.region_id = r.id AND g.revoked_at IS NULL
                     AND g.last_heartbeat_at > now() - make_interval(secs => $1)) AS now_healthy
           FROM regions r FOR UPDATE OF r)
       UPDATE regions r SET healthy = h.now_healthy, health_checked_at = now(),
              unhealthy_since = CASE WHEN h.now_healthy THEN NULL ELSE coalesce(r.unhealthy_since, now()) END
         FROM h WHERE r.id = h.id
       RETURNING r.id, r.slug, r.healthy, h.was`,
      [downAfterSeconds],
    );
  }

  /** Every region with its health computed now (same rule as {@link updateRegionHealth}). */
  async regionCandidates(tx: PlatformTx, downAfterSeconds: number): Promise<RegionCandidateRow[]> {
    return query<RegionCandidateRow>(
      tx,
      `SELECT r.id, r.slug, r.latitude, r.longitude, r.enabled,
              r.public_host AS "publicHost", r.public_port AS "publicPort",
              r.enabled AND EXISTS (
                SELECT 1 FROM gateways g WHERE g.region_id = r.id AND g.revoked_at IS NULL
                   AND g.last_heartbeat_at > now() - make_interval(secs => $1)) AS healthy
         FROM regions r`,
      [downAfterSeconds],
    );
  }

  /** The public host of an unrevoked gateway's region; null when revoked or unknown. */
  async gatewayPublicHost(tx: PlatformTx, gatewayId: string): Promise<string | null> {
    const [gw] = await query<{ publicHost: string }>(
      tx,
      `SELECT r.public_host AS "publicHost" FROM gateways g JOIN regions r ON r.id = g.region_id
        WHERE g.id = $1 AND g.revoked_at IS NULL`,
      [gatewayId],
    );
    return gw?.publicHost ?? null;
  }
}
