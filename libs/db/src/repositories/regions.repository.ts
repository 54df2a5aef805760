import { query } from '../sql';
import type { PlatformTx } from '../tenancy';
import { newestFirst, toPage, type Page, type PageRequest } from './pagination';

export interface RegionRow {
  id: string;
  slug: string;
  name: string;
  publicHost: string;
  publicPort: number;
  latitude: number;
  longitude: number;
  enabled: boolean;
  /** As the last region health check saw it (null before the first check). */
  healthy: boolean | null;
  healthCheckedAt: Date | null;
  unhealthySince: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export type RegionInput = Omit<
  RegionRow,
  'id' | 'createdAt' | 'updatedAt' | 'healthy' | 'healthCheckedAt' | 'unhealthySince'
>;

export interface GatewayRow {
  id: string;
  regionId: string;
  name: string;
  enrolledAt: Date;
  lastHeartbeatAt: Date | null;
  version: string | null;
  revokedAt: Date | null;
  /** Computed: a heartbeat within the window. */
  up: boolean;
  createdAt: Date;
}

const REGION_COLS = `id, slug, name, public_host AS "publicHost", public_port AS "publicPort", latitude, longitude,
  enabled, healthy, health_checked_at AS "healthCheckedAt", unhealthy_since AS "unhealthySince",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

function gatewayCols(downAfterSeconds: number): string {
  return `id, region_id AS "regionId", name, enrolled_at AS "enrolledAt", enrolled_at AS "createdAt",
    last_heartbeat_at AS "lastHeartbeatAt", version, revoked_at AS "revokedAt",
    (revoked_at IS NULL AND last_heartbeat_at IS NOT NULL
      AND last_heartbeat_at > now() - make_interval(secs => ${Math.floor(downAfterSeconds)})) AS up`;
}

/** Regions and gateways are platform objects (no tenant): platform operators manage them. */
export class RegionsRepository {
  async create(tx: PlatformTx, r: RegionInput): Promise<RegionRow> {
    const rows = await query<RegionRow>(
      tx,
      `INSERT INTO regions (slug, name, public_host, public_port, latitude, longitude, enabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${REGION_COLS}`,
      [r.slug, r.name, r.publicHost, r.publicPort, r.latitude, r.longitude, r.enabled],
    );
    return rows[0]!;
  }

  async list(tx: PlatformTx, page: PageRequest): Promise<Page<RegionRow>> {
    const params: unknown[] = [];
    const rest = newestFirst(page, params, 'true');
    const rows = await query<RegionRow>(tx, `SELECT ${REGION_COLS} FROM regions WHERE ${rest}`, params);
    return toPage(rows, page.limit);
  }

  async get(tx: PlatformTx, id: string): Promise<RegionRow | null> {
    const rows = await query<RegionRow>(tx, `SELECT ${REGION_COLS} FROM regions WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  async update(tx: PlatformTx, id: string, patch: Partial<RegionInput>): Promise<RegionRow | null> {
    const map: Record<keyof RegionInput, string> = {
      slug: 'slug',
      name: 'name',
      publicHost: 'public_host',
      publicPort: 'public_port',
      latitude: 'latitude',
      longitude: 'longitude',
      enabled: 'enabled',
    };
    const params: unknown[] = [id];
    const sets = ['updated_at = now()'];
    for (const [k, col] of Object.entries(map) as [keyof RegionInput, string][]) {
      if (patch[k] !== undefined) {
        params.push(patch[k]);
        sets.push(`${col} = $${params.length}`);
      }
    }
    const rows = await query<RegionRow>(
      tx,
      `UPDATE regions SET ${sets.join(', ')} WHERE id = $1 RETURNING ${REGION_COLS}`,
      params,
    );
    return rows[0] ?? null;
  }

  /** False when gateways still belong to it. */
  async delete(tx: PlatformTx, id: string): Promise<RegionRow | null | 'in_use'> {
    const used = await query(tx, `SELECT 1 FROM gateways WHERE region_id = $1 AND revoked_at IS NULL LIMIT 1`, [id]);
    if (used.length > 0) return 'in_use';
    await query(tx, `DELETE FROM gateways WHERE region_id = $1`, [id]);
    const rows = await query<RegionRow>(tx, `DELETE FROM regions WHERE id = $1 RETURNING ${REGION_COLS}`, [id]);
    return rows[0] ?? null;
  }

  async addEnrollmentToken(
    tx: PlatformTx,
    regionId: string,
    tokenHash: string,
    expiresAt: Date,
    createdBy: string,
  ): Promise<string> {
    const rows = await query<{ id: string }>(
      tx,
      `INSERT INTO gateway_enrollment_tokens (region_id, token_hash, expires_at, created_by) VALUES ($1, $2, $3, $4) RETURNING id`,
      [regionId, tokenHash, expiresAt, createdBy],
    );
    return rows[0]!.id;
  }

  /** Uses an enrollment token once; returns its region. */
  async consumeEnrollmentToken(tx: PlatformTx, tokenHash: string): Promise<string | null> {
    const rows = await query<{ regionId: string }>(
      tx,
      `UPDATE gateway_enrollment_tokens SET used_at = now()
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING region_id AS "regionId"`,
      [tokenHash],
    );
    return rows[0]?.regionId ?? null;
  }

  async createGateway(
    tx: PlatformTx,
    input: { regionId: string; name: string; credentialHash: string },
    downAfterSeconds: number,
  ): Promise<GatewayRow> {
    const rows = await query<GatewayRow>(
      tx,
      `INSERT INTO gateways (region_id, name, credential_hash) VALUES ($1, $2, $3) RETURNING ${gatewayCols(downAfterSeconds)}`,
      [input.regionId, input.name, input.credentialHash],
    );
    return rows[0]!;
  }

  async gatewayByCredential(
    tx: PlatformTx,
    credentialHash: string,
    downAfterSeconds: number,
  ): Promise<GatewayRow | null> {
    const rows = await query<GatewayRow>(
      tx,
      `SELECT ${gatewayCols(downAfterSeconds)} FROM gateways WHERE credential_hash = $1 AND revoked_at IS NULL`,
      [credentialHash],
    );
    return rows[0] ?? null;
  }

  async heartbeat(
    tx: PlatformTx,
    id: string,
    version: string | null,
    downAfterSeconds: number,
  ): Promise<GatewayRow | null> {
    const rows = await query<GatewayRow>(
      tx,
      `UPDATE gateways SET last_heartbeat_at = now(), version = coalesce($2, version)
        WHERE id = $1 AND revoked_at IS NULL RETURNING ${gatewayCols(downAfterSeconds)}`,
      [id, version],
    );
    return rows[0] ?? null;
  }

  async listGateways(tx: PlatformTx, regionId: string | undefined, downAfterSeconds: number): Promise<GatewayRow[]> {
    return query<GatewayRow>(
      tx,
      `SELECT ${gatewayCols(downAfterSeconds)} FROM gateways WHERE ($1::uuid IS NULL OR region_id = $1::uuid)
        ORDER BY enrolled_at DESC, id DESC LIMIT 1000`,
      [regionId ?? null],
    );
  }

  async revokeGateway(tx: PlatformTx, id: string, downAfterSeconds: number): Promise<GatewayRow | null> {
    const rows = await query<GatewayRow>(
      tx,
      `UPDATE gateways SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${gatewayCols(downAfterSeconds)}`,
      [id],
    );
    return rows[0] ?? null;
  }
}
