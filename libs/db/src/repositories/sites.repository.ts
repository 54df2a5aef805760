import type { TenantTx } from '../tenancy';
import { decodeCursor, toPage, type Page, type PageRequest } from './pagination';

export interface SiteRow {
  id: string;
  tenantId: string;
  name: string;
  notes: string;
  tags: string[];
  address: string | null;
  latitude: number | null;
  longitude: number | null;
  mgmtAddress: string;
  online: boolean;
  lastSeenAt: Date | null;
  routerosVersion: string | null;
  board: string | null;
  regionId: string | null;
  gatewayId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SiteInput {
  name: string;
  notes: string;
  tags: string[];
  address: string | null;
  latitude: number | null;
  longitude: number | null;
}

export interface SiteFilter {
  /** Case-insensitive substring of the name. */
  readonly q?: string | undefined;
  readonly tag?: string | undefined;
  readonly online?: boolean | undefined;
}

const COLS = `id, tenant_id AS "tenantId", name, notes, tags, address, latitude, longitude,
  host(mgmt_address) AS "mgmtAddress", online, last_seen_at AS "lastSeenAt",
  routeros_version AS "routerosVersion", board, region_id AS "regionId", gateway_id AS "gatewayId",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Sites of one tenant. Every method needs a tenant transaction; RLS checks it again. */
export class SitesRepository {
  async create(tx: TenantTx, input: SiteInput): Promise<SiteRow> {
    const rows = await tx.query<SiteRow>(
      `INSERT INTO sites (tenant_id, name, notes, tags, address, latitude, longitude, mgmt_address)
       VALUES ($1, $2, $3, $4, $5, $6, $7, bp_allocate_mgmt_address()) RETURNING ${COLS}`,
      [tx.tenantId, input.name, input.notes, input.tags, input.address, input.latitude, input.longitude],
    );
    return rows[0]!;
  }

  async list(tx: TenantTx, page: PageRequest, filter: SiteFilter = {}): Promise<Page<SiteRow>> {
    const params: unknown[] = [tx.tenantId];
    const where = [`tenant_id = $1`, `deleted_at IS NULL`];
    if (page.cursor) {
      const k = decodeCursor(page.cursor);
      params.push(k.createdAt, k.id);
      where.push(`(created_at, id) > ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    if (filter.q) {
      params.push(`%${likeEscape(filter.q)}%`);
      where.push(`name ILIKE $${params.length}`);
    }
    if (filter.tag) {
      params.push([filter.tag]);
      where.push(`tags @> $${params.length}::text[]`);
    }
    if (filter.online !== undefined) {
      params.push(filter.online);
      where.push(`online = $${params.length}`);
    }
    params.push(page.limit + 1);
    const rows = await tx.query<SiteRow>(
      `SELECT ${COLS} FROM sites WHERE ${where.join(' AND ')} ORDER BY created_at, id LIMIT $${params.length}`,
      params,
    );
    return toPage(rows, page.limit);
  }

  async get(tx: TenantTx, id: string): Promise<SiteRow | null> {
    const rows = await tx.query<SiteRow>(
      `SELECT ${COLS} FROM sites WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`,
      [tx.tenantId, id],
    );
    return rows[0] ?? null;
  }

  async update(tx: TenantTx, id: string, patch: Partial<SiteInput>): Promise<SiteRow | null> {
    const sets: string[] = [];
    const params: unknown[] = [tx.tenantId, id];
    const columns: Record<keyof SiteInput, string> = {
      name: 'name',
      notes: 'notes',
      tags: 'tags',
      address: 'address',
      latitude: 'latitude',
      longitude: 'longitude',
    };
    for (const [key, column] of Object.entries(columns) as [keyof SiteInput, string][]) {
      if (patch[key] !== undefined) {
        params.push(patch[key]);
        sets.push(`${column} = $${params.length}`);
      }
    }
    sets.push('updated_at = now()');
    const rows = await tx.query<SiteRow>(
      `UPDATE sites SET ${sets.join(', ')} WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING ${COLS}`,
      params,
    );
    return rows[0] ?? null;
  }

  /** Soft delete: the row stays for history; its management address leaves the live set. */
  async delete(tx: TenantTx, id: string): Promise<SiteRow | null> {
    const rows = await tx.query<SiteRow>(
      `UPDATE sites SET deleted_at = now(), updated_at = now(), online = false
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING ${COLS}`,
      [tx.tenantId, id],
    );
    return rows[0] ?? null;
  }

  /**
   * Counts of a tenant's sites by health and region in one query: online = tunnel up;
   * degraded = no tunnel but the router still polls (fewer than 10 missed polls); offline =
   * seen before, neither; pending = never seen. `pollIntervalSeconds` is the default for
   * sites without their own interval.
   */
  async summary(tx: TenantTx, pollIntervalSeconds: number): Promise<SiteSummary> {
    const rows = await tx.query<{
      region_id: string | null;
      region_name: string | null;
      health: SiteHealthState;
      n: string;
    }>(
      `SELECT s.region_id, r.name AS region_name, h.health, count(*) AS n
         FROM sites s
         LEFT JOIN site_agents a ON a.site_id = s.id
         LEFT JOIN regions r ON r.id = s.region_id
         CROSS JOIN LATERAL (SELECT CASE
           WHEN s.online THEN 'online'
           WHEN a.last_poll_at > now() - make_interval(secs => 10 * coalesce(a.poll_interval_seconds, $2)) THEN 'degraded'
           WHEN s.last_seen_at IS NOT NULL OR a.onboarded_at IS NOT NULL OR a.last_poll_at IS NOT NULL THEN 'offline'
           ELSE 'pending' END AS health) h
        WHERE s.tenant_id = $1 AND s.deleted_at IS NULL
        GROUP BY s.region_id, r.name, h.health`,
      [tx.tenantId, pollIntervalSeconds],
    );
    const empty = (): SiteSummaryCounts => ({ total: 0, online: 0, degraded: 0, offline: 0, pending: 0 });
    const all = empty();
    const regions = new Map<string, SiteSummary['regions'][number]>();
    for (const r of rows) {
      const n = Number(r.n);
      const key = r.region_id ?? '';
      let reg = regions.get(key);
      if (!reg) regions.set(key, (reg = { ...empty(), regionId: r.region_id, regionName: r.region_name }));
      all[r.health] += n;
      all.total += n;
      reg[r.health] += n;
      reg.total += n;
    }
    return { ...all, regions: [...regions.values()].sort((a, b) => b.total - a.total) };
  }
}

/** How a site is doing, as the fleet overview counts it. */
export type SiteHealthState = 'online' | 'degraded' | 'offline' | 'pending';

export interface SiteSummaryCounts {
  total: number;
  online: number;
  degraded: number;
  offline: number;
  pending: number;
}

export interface SiteSummary extends SiteSummaryCounts {
  /** Per region (null: not assigned yet), largest first. */
  regions: (SiteSummaryCounts & { regionId: string | null; regionName: string | null })[];
}
