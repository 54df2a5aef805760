import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { decodeCursor, toPage, type Page, type PageRequest } from './pagination';

export interface SiteRow extends SiteInput {
  id: string;
  tenantId: string;
  mgmtAddress: string;
  online: boolean;
  lastSeenAt: Date | null;
  routerosVersion: string | null;
  board: string | null;
  regionId: string | null;
  gatewayId: string | null;
  /** {@link healthSql}: the same rule the fleet summary counts by. */
  health: SiteHealthState;
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
  readonly health?: SiteHealthState | undefined;
}

/**
 * A site's health, the one copy of the rule (fleet summary counts, the list's and get's `health`,
 * the list's `health` filter): online = tunnel up; degraded = no tunnel but the router still
 * polls (fewer than 10 missed polls); offline = seen before, neither; pending = never seen.
 * `s` is a `sites` row and `a` its `site_agents` row (LEFT JOINed: null when never onboarded);
 * `interval` is the SQL (a parameter) for the poll interval in seconds of sites without their own.
 */
function healthSql(s: string, a: string, interval: string): string {
  return `CASE
      WHEN ${s}.online THEN 'online'
      WHEN ${a}.last_poll_at > now() - make_interval(secs => 10 * coalesce(${a}.poll_interval_seconds, ${interval})) THEN 'degraded'
      WHEN ${s}.last_seen_at IS NOT NULL OR ${a}.onboarded_at IS NOT NULL OR ${a}.last_poll_at IS NOT NULL THEN 'offline'
      ELSE 'pending' END`;
}

/** A site's agent row (if any) as `a`, for {@link healthSql}. */
const AGENT_JOIN = `LEFT JOIN site_agents a ON a.site_id = s.id`;

/** The columns of `sites s` as a {@link SiteRow}, with `health` the given SQL. */
const cols = (health: string) => `s.id, s.tenant_id AS "tenantId", s.name, s.notes, s.tags, s.address,
  s.latitude, s.longitude, host(s.mgmt_address) AS "mgmtAddress", s.online, s.last_seen_at AS "lastSeenAt",
  s.routeros_version AS "routerosVersion", s.board, s.region_id AS "regionId", s.gateway_id AS "gatewayId",
  ${health} AS health, s.created_at AS "createdAt", s.updated_at AS "updatedAt"`;
/** For a SELECT with {@link AGENT_JOIN}. */
const selectCols = (interval: string) => cols(healthSql('s', 'a', interval));
/** For RETURNING of INSERT/UPDATE `sites AS s` (no joins there: the one row's agent is looked up). */
const returningCols = (interval: string) =>
  cols(`(SELECT ${healthSql('s', 'a', interval)} FROM (SELECT 1) AS one ${AGENT_JOIN})`);

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Sites of one tenant. Every method needs a tenant transaction; RLS checks it again.
 * `pollIntervalSeconds` is the default poll interval for sites without their own (see `healthSql`).
 */
export class SitesRepository {
  /** A new site is pending (no agent, never seen), so the poll interval may be left out here. */
  async create(tx: TenantTx, input: SiteInput, pollIntervalSeconds?: number): Promise<SiteRow> {
    const rows = await query<SiteRow>(
      tx,
      `INSERT INTO sites AS s (tenant_id, name, notes, tags, address, latitude, longitude, mgmt_address)
       VALUES ($1, $2, $3, $4, $5, $6, $7, bp_allocate_mgmt_address()) RETURNING ${returningCols('$8::integer')}`,
      [
        tx.tenantId,
        input.name,
        input.notes,
        input.tags,
        input.address,
        input.latitude,
        input.longitude,
        pollIntervalSeconds ?? null,
      ],
    );
    return rows[0]!;
  }

  async list(tx: TenantTx, page: PageRequest, filter: SiteFilter, pollIntervalSeconds: number): Promise<Page<SiteRow>> {
    const params: unknown[] = [tx.tenantId, pollIntervalSeconds];
    const interval = '$2::integer';
    const where = [`s.tenant_id = $1`, `s.deleted_at IS NULL`];
    if (page.cursor) {
      const k = decodeCursor(page.cursor);
      params.push(k.createdAt, k.id);
      where.push(`(s.created_at, s.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    if (filter.q) {
      params.push(`%${likeEscape(filter.q)}%`);
      where.push(`s.name ILIKE $${params.length}`);
    }
    if (filter.tag) {
      params.push([filter.tag]);
      where.push(`s.tags @> $${params.length}::text[]`);
    }
    if (filter.online !== undefined) {
      params.push(filter.online);
      where.push(`s.online = $${params.length}`);
    }
    if (filter.health) {
      params.push(filter.health);
      where.push(`${healthSql('s', 'a', interval)} = $${params.length}`);
    }
    params.push(page.limit + 1);
    const rows = await query<SiteRow>(
      tx,
      `SELECT ${selectCols(interval)} FROM sites s ${AGENT_JOIN}
        WHERE ${where.join(' AND ')} ORDER BY s.created_at DESC, s.id DESC LIMIT $${params.length}`,
      params,
    );
    return toPage(rows, page.limit);
  }

  async get(tx: TenantTx, id: string, pollIntervalSeconds: number): Promise<SiteRow | null> {
    const rows = await query<SiteRow>(
      tx,
      `SELECT ${selectCols('$3::integer')} FROM sites s ${AGENT_JOIN}
        WHERE s.tenant_id = $1 AND s.id = $2 AND s.deleted_at IS NULL`,
      [tx.tenantId, id, pollIntervalSeconds],
    );
    return rows[0] ?? null;
  }

  async update(
    tx: TenantTx,
    id: string,
    patch: Partial<SiteInput>,
    pollIntervalSeconds: number,
  ): Promise<SiteRow | null> {
    const sets: string[] = [];
    const params: unknown[] = [tx.tenantId, id, pollIntervalSeconds];
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
    const rows = await query<SiteRow>(
      tx,
      `UPDATE sites AS s SET ${sets.join(', ')} WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
        RETURNING ${returningCols('$3::integer')}`,
      params,
    );
    return rows[0] ?? null;
  }

  /** Every onboarded site of every tenant (scheduled backups). */
  async onboarded(tx: PlatformTx): Promise<{ tenant_id: string; site_id: string }[]> {
    return query<{ tenant_id: string; site_id: string }>(tx, `SELECT * FROM bp_onboarded_sites()`);
  }

  /**
   * One page of the onboarded sites of every tenant, in (tenant, site) order after `after`
   * (keyset): scheduled backups read at most `limit` rows per query however large the fleet.
   */
  async onboardedPage(
    tx: PlatformTx,
    after: { tenant_id: string; site_id: string } | null,
    limit: number,
  ): Promise<{ tenant_id: string; site_id: string }[]> {
    return query<{ tenant_id: string; site_id: string }>(
      tx,
      `SELECT tenant_id, site_id FROM bp_onboarded_sites()
        WHERE $1::uuid IS NULL OR (tenant_id, site_id) > ($1::uuid, $2::uuid)
        ORDER BY tenant_id, site_id LIMIT $3`,
      [after?.tenant_id ?? null, after?.site_id ?? null, limit],
    );
  }

  /** Whether a live (not deleted) site with this id exists. */
  async exists(tx: TenantTx, id: string): Promise<boolean> {
    return (await query(tx, `SELECT 1 FROM sites WHERE id = $1 AND deleted_at IS NULL`, [id])).length > 0;
  }

  /** A live site's region (`regionId` null when it has none); null when there is no such site. */
  async region(tx: TenantTx, id: string): Promise<{ regionId: string | null } | null> {
    const [row] = await query<{ regionId: string | null }>(
      tx,
      `SELECT region_id AS "regionId" FROM sites WHERE id = $1 AND deleted_at IS NULL`,
      [id],
    );
    return row ?? null;
  }

  /** Moves a live site to a region; false when there is no such site. */
  async setRegion(tx: TenantTx, id: string, regionId: string): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE sites SET region_id = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
      [id, regionId],
    );
    return rows.length > 0;
  }

  /** Ids of the live sites that are in `ids` or carry one of `tags`, in id order. */
  async idsMatching(tx: TenantTx, ids: readonly string[], tags: readonly string[]): Promise<string[]> {
    const rows = await query<{ id: string }>(
      tx,
      `SELECT id FROM sites WHERE deleted_at IS NULL AND (id = ANY($1::uuid[]) OR tags && $2::text[]) ORDER BY id`,
      [ids, tags],
    );
    return rows.map((r) => r.id);
  }

  /** Soft delete: the row stays for history; its management address leaves the live set. */
  async delete(tx: TenantTx, id: string, pollIntervalSeconds: number): Promise<SiteRow | null> {
    const rows = await query<SiteRow>(
      tx,
      `UPDATE sites AS s SET deleted_at = now(), updated_at = now(), online = false
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING ${returningCols('$3::integer')}`,
      [tx.tenantId, id, pollIntervalSeconds],
    );
    return rows[0] ?? null;
  }

  /** Counts of a tenant's sites by health ({@link healthSql}) and region in one query. */
  async summary(tx: TenantTx, pollIntervalSeconds: number): Promise<SiteSummary> {
    const rows = await query<{
      region_id: string | null;
      region_name: string | null;
      health: SiteHealthState;
      n: string;
    }>(
      tx,
      `SELECT s.region_id, r.name AS region_name, h.health, count(*) AS n
         FROM sites s
         ${AGENT_JOIN}
         LEFT JOIN regions r ON r.id = s.region_id
         CROSS JOIN LATERAL (SELECT ${healthSql('s', 'a', '$2::integer')} AS health) h
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
